"""The state Locust's page reads from ``/stats/requests`` with loadgen's tab in it: never one that
ends the page's polling while the test is still changing state (the page then stuck at READY
after a start, or at CLEANUP after a stop, on a busy machine). Run in a child process: importing
Locust patches the standard library with gevent, which this test process must not get."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import threading

    import gevent
    from locust import User, task
    from locust.argument_parser import get_parser
    from locust.env import Environment

    from loadgen.locust.live import LiveHistory
    from loadgen.locust.webui import extend_web_ui
    from loadgen.metrics.aggregate import Aggregator

    class Idle(User):
        @task
        def nothing(self):
            gevent.sleep(1)

    class Source:
        lock = threading.Lock()
        history = LiveHistory()
        tests = 0
        pinned_target = None

        def aggregator(self):
            return Aggregator()

        def extended_stats(self):
            return []

    environment = Environment(user_classes=[Idle], parsed_options=get_parser().parse_args(["--web-port", "8089"]))
    runner = environment.create_local_runner()
    web_ui = environment.create_web_ui("127.0.0.1", 8089)
    extend_web_ui(environment, Source())
    client = web_ui.app.test_client()
    ui = {"base_url": "http://127.0.0.1:8089", "headers": {"Origin": "http://127.0.0.1:8089"}}

    def state():
        return client.get("/stats/requests", **ui).get_json()["state"]

    print("first", state())                    # Locust caches this answer for 2 s
    started = client.post("/swarm", data={"user_count": 1, "spawn_rate": 1, "host": ""}, **ui).get_json()
    print("started", started["success"], runner.state)  # was "ready": the start runs in a greenlet
    print("after start", state())               # was the cached "ready": the page stopped polling
    runner.update_state("running")
    runner.update_state("cleanup")              # a stop, its users being stopped
    gevent.spawn_later(0.3, runner.update_state, "stopped")
    print("after stop", state())                # was "cleanup": the page stopped polling for good
""")


def test_the_page_never_reads_a_state_that_ends_its_polling_mid_change() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "first ready" and lines[-1] == "after stop stopped", done.stdout
    assert lines[1] in ("started True spawning", "started True running"), done.stdout  # the start, answered
    assert lines[2] in ("after start spawning", "after start running"), done.stdout
