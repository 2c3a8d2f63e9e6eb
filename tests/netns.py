"""Hosts for multi-machine tests: Linux network namespaces joined by veth pairs to a bridge.

Each host is a namespace of its own with one interface and a private address (10.231.0.0/24);
the bridge lives in a namespace of its own too, so nothing is added to the machine's own network.
Everything is removed when the ``hosts`` context ends, processes started in them included.
Needs root (CI runs as root); ``skip_reason()`` says why not where it cannot work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

SUBNET = "10.231.0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


def skip_reason() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    probe = f"lgprobe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return f"cannot create a network namespace here: {detail.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Host:
    name: str  # the namespace
    address: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, argv: list[str], **popen: object) -> subprocess.Popen[bytes]:
        """Runs ``argv`` inside this host, in a process group of its own (``kill`` stops it all)."""
        process: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            ["ip", "netns", "exec", self.name, *argv], start_new_session=True, **popen
        )
        self.processes.append(process)
        return process

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True, timeout=30)


def kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)


@contextlib.contextmanager
def hosts(*names: str) -> Iterator[dict[str, Host]]:
    """One namespace per name, addresses 10.231.0.1, .2, … in that order, all on one bridge."""
    tag = uuid.uuid4().hex[:6]
    switch = f"lg{tag}sw"
    made: list[str] = []
    machines: dict[str, Host] = {}
    try:
        _ip("netns", "add", switch)
        made.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for number, name in enumerate(names, start=1):
            namespace = f"lg{tag}{number}"
            _ip("netns", "add", namespace)
            made.append(namespace)
            port = f"p{number}"
            _ip("link", "add", "name", "eth0", "netns", namespace, "type", "veth", "peer", "name", port,
                "netns", switch)  # fmt: skip
            _ip("-n", switch, "link", "set", port, "master", "br0", "up")
            address = f"{SUBNET}.{number}"
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            machines[name] = Host(namespace, address)
        yield machines
    finally:
        for machine in machines.values():
            for process in machine.processes:
                kill(process)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
        for namespace in reversed(made):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", namespace)
