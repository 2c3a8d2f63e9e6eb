"""Locust mode: LLM users for Locust's web UI and its master/worker distribution.

``from loadgen.locust import OpenAIChatUser`` imports Locust, which patches the standard library
for gevent: do that in a locustfile or a Locust process only. The package itself (and
``loadgen.locust.launch``, behind ``loadgen locust``) does not import Locust.
"""

from __future__ import annotations

from typing import Any

USER_CLASSES = ("LLMUser", "LmiUser", "OpenAIChatUser", "OpenAICompletionsUser", "TgiUser", "TritonGenerateUser")


def __getattr__(name: str) -> Any:
    if name in USER_CLASSES:
        from loadgen.locust import users

        return getattr(users, name)
    raise AttributeError(f"module 'loadgen.locust' has no attribute {name!r}")


__all__ = list(USER_CLASSES)
