from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions

SimFactory = Callable[..., SimProcess]


@pytest.fixture
def start_sim() -> Iterator[SimFactory]:
    """Start simulator processes on 127.0.0.1 free ports; all are stopped after the test."""
    started: list[SimProcess] = []

    def start(profile: str = "fixed:20,5", **options: object) -> SimProcess:
        sim = SimProcess(SimSpec(profile, SimOptions(**options))).start()  # type: ignore[arg-type]
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


SLOW_PATHS = ("tests/vllm/", "tests/triton/", "tests/locust/test_launch.py", "tests/locust/test_hosts.py",
              "tests/run/test_selftest.py", "tests/plan/test_fidelity.py", "tests/reliability/test_dead_worker.py",
              "tests/reliability/test_closing_server.py", "tests/reliability/test_hostile_locust.py")  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Real servers, browsers, Locust and namespaces take most of the suite's time: ``slow``, so
    ``pytest -m 'not slow'`` runs the rest in well under a minute (CI still runs everything)."""
    for item in items:
        path = item.path.relative_to(config.rootpath).as_posix()
        if path.startswith(SLOW_PATHS) or "chromium" in item.name or "browser" in item.name:
            item.add_marker(pytest.mark.slow)
