"""Locust mode: who may change a running test through the web UI (pure; imports no Locust).

Locust's UI starts, stops and retargets a load with plain POSTs. A page on another site (or one
reached by DNS rebinding) could send them from the user's browser, and the host field would move
the load, with its API key, anywhere. ``loadgen locust`` pins the target to its ``--endpoint`` and
accepts state changes only from the UI's own origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from loadgen.parsing import public_url


def state_change_refusal(host: str, origin: str | None, path: str, new_target: str | None, options: Any,
                         pinned: str | None) -> str | None:  # fmt: skip
    """Why a state-changing request to the web UI is refused, or None."""
    port = getattr(options, "web_port", None)
    web_host = getattr(options, "web_host", "127.0.0.1") or "127.0.0.1"
    if origin is not None and origin != "null" and urlsplit(origin).netloc != host:
        return f"refused: a request from {origin} to this UI at {host}"
    if web_host in ("127.0.0.1", "localhost", "::1") and host not in {f"127.0.0.1:{port}", f"localhost:{port}",
                                                                        f"[::1]:{port}"}:  # fmt: skip
        return f"refused: this UI serves 127.0.0.1:{port}, not {host}"
    if path.rstrip("/") == "/swarm" and pinned and new_target and new_target.rstrip("/") != pinned.rstrip("/"):
        return f"refused: the target is pinned to {public_url(pinned)}; restart loadgen locust to change it"
    return None
