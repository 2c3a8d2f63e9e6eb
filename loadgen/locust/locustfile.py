"""The locustfile ``loadgen locust`` runs: one user class configured from the resolved job."""

from loadgen.locust.users import LLMUser


class LoadgenUser(LLMUser):
    """Sends the scenario's prompts to its endpoint with its API (see ``loadgen locust``)."""
