"""Locust mode: who may change a running test through the web UI (pure; imports no Locust).

Locust's UI starts, stops and retargets a load with plain POSTs. A page on another site (or one
reached by DNS rebinding) could send them from the user's browser, and the host field would move
the load, with its API key, anywhere. ``loadgen locust`` pins the target to its ``--endpoint`` and
accepts state changes only from the UI's own origin.
"""

from __future__ import annotations

import ipaddress
import socket
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
    if web_host in LOOPBACK_NAMES and host not in {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}:
        return f"refused: this UI serves 127.0.0.1:{port}, not {host}"
    if web_host not in LOOPBACK_NAMES and not _names_this_machine(host, web_host):
        # a name that is not this machine's reached it: DNS rebinding, or a proxy that should say so
        return f"refused: {host} is not an address or name of this machine"
    if path.rstrip("/") == "/swarm" and pinned and new_target and public_url(new_target) != public_url(pinned):
        return f"refused: the target is pinned to {public_url(pinned)}; restart loadgen locust to change it"
    return None


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def listens_beyond_this_machine(web_host: str) -> bool:
    return web_host not in LOOPBACK_NAMES


def _names_this_machine(host: str, web_host: str) -> bool:
    """An IP address (a rebinding attack needs a name), this machine's own name, or --web-host."""
    name = urlsplit(f"//{host}").hostname or ""
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    own = {socket.gethostname().lower(), socket.getfqdn().lower(), "localhost", web_host.lower()}
    return name.lower() in own
