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


def test_a_killed_worker_leaves_a_partial_merged_level(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:5,5")
    output = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "sweep", "--endpoint", sim.url, "--workers", "2", "--concurrency", "4,2",
         "--duration", "4s", "--max-tokens", "10", "--quiet", "--output", str(output)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        workers: list[psutil.Process] = []
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = [p for p in psutil.Process(run.pid).children(recursive=True)
                       if "loadgen.run.workers" in " ".join(p.cmdline())]  # fmt: skip
            time.sleep(0.1)
        assert len(workers) == 2, "the worker processes never started"
        time.sleep(2.0)  # into the measured load
        workers[0].send_signal(signal.SIGKILL)
        output_text, _ = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 3, output_text
    assert "died; its records on disk are merged" in output_text.replace("\n", " ")
    first = json.loads(next(output.glob("level-01-*")).joinpath("summary.json").read_text())
    assert first["partial"] and first["stop_reason"] == "worker_lost" and len(first["workers"]["lost"]) == 1
    assert first["requests"]["completed"] > 0
    second = json.loads(next(output.glob("level-02-*")).joinpath("summary.json").read_text())
    assert not second["partial"] and second["requests"]["completed"] > 0  # the sweep went on
