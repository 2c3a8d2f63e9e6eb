"""A worker process killed mid-level (kill -9): the survivor's results and the dead one's records
on disk are merged, the level is partial, the sweep goes on, and the exit code says so."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.conftest import SimFactory
from tests.processes import READY_WAIT_S


def test_a_killed_worker_leaves_a_partial_merged_level(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:5,5")
    output = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "sweep", "--endpoint", sim.url, "--workers", "2", "--concurrency", "4,2",
         "--duration", "6s", "--max-tokens", "10", "--quiet", "--output", str(output)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # killed once its records show it is in the measured load (a recorded fact, not a sleep: on a
        # busy machine workers take seconds to start, and one killed before the load is another case)
        deadline = time.monotonic() + READY_WAIT_S
        while not any(path.stat().st_size for path in output.glob("level-01-*/workers/w*/requests.jsonl")):
            assert time.monotonic() < deadline and run.poll() is None, "the workers never reached the load"
            time.sleep(0.05)
        workers = [p for p in psutil.Process(run.pid).children(recursive=True)
                   if "loadgen.run.workers" in " ".join(p.cmdline())]  # fmt: skip
        assert len(workers) == 2
        workers[0].send_signal(signal.SIGKILL)
        output_text, _ = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 3, output_text
    assert "died; its records on disk are merged" in output_text.replace("\n", " ")
    first = json.loads(next(output.glob("level-01-*")).joinpath("summary.json").read_text())
    assert first["partial"] and first["stop_reason"] == "worker_lost" and len(first["workers"]["lost"]) == 1
    assert first["requests"]["completed"] > 0
    second = json.loads(next(output.glob("level-02-*")).joinpath("summary.json").read_text())
    assert not second["partial"] and second["requests"]["completed"] > 0  # the sweep went on
