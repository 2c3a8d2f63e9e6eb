"""Ctrl-C is honoured at once, also while the preflight waits on a server that never answers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from loadgen.metrics.results import RunSummary
from tests.processes import loadgen_command, records_written, signal_group_when, started_until


def test_ctrl_c_during_the_preflight_ends_the_run_at_once(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()  # accepts, never answers
    port = listener.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "run", "--endpoint", f"http://127.0.0.1:{port}", "--model", "m",
         "--requests", "1", "--output", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not held and time.monotonic() < deadline:  # the preflight has connected and now waits
            time.sleep(0.05)
        assert held, "the preflight never connected"
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
    finally:
        process.kill()
        listener.close()
        for conn in held:
            conn.close()
    assert process.returncode == 130
    assert "interrupted during the preflight" in output and "Traceback" not in output


GROUP_SIGNAL_COMMANDS = {
    "sweep --telemetry host": ["sweep", "--concurrency", "1,2", "--telemetry", "host"],
    "compare": ["compare", "--concurrency", "1,2", "--variant", "a=sim:fixed:2,20", "--variant", "b=sim:fixed:2,10"],
    "locust --headless": ["locust", "--headless", "--users", "2", "--run-time", "120s"],
}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", list(GROUP_SIGNAL_COMMANDS))
def test_a_signal_to_the_whole_group_ends_cleanly(command: str, signum: int, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Ctrl-C in a terminal signals the whole process group (the simulator, the telemetry sidecar
    and Locust included); ``timeout`` sends SIGTERM. Either way: exit 130, no traceback, no process
    left, no job file (it holds keys) left in the temporary directory, and every level that
    completed keeps a valid summary.json (the cut one is partial)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    output = tmp_path / "out"
    line = loadgen_command(*GROUP_SIGNAL_COMMANDS[command], "--sim-profile", "fixed:2,20", "--requests", "24",
                           "--warmup", "0", "--max-tokens", "20", "--output", str(output))  # fmt: skip
    sweeping = command != "locust --headless"
    signalled = signal_group_when(line, lambda: _mid_second_level(output) if sweeping else records_written(output),
                                  signum)  # fmt: skip
    assert signalled.returncode == 130, signalled.printed[-3000:]
    assert "Traceback" not in signalled.printed and "internal error" not in signalled.printed
    assert not signalled.left_running
    assert not list(temporary.glob("loadgen-locust-*"))
    summaries = {path: RunSummary.from_json(json.loads(path.read_text())) for path in output.rglob("summary.json")}
    completed = [summary for path, summary in summaries.items() if "level-01" in str(path)]
    if sweeping:
        assert completed and all(not summary.partial and summary.validity for summary in completed)
    assert any(summary.partial for summary in summaries.values())  # the level the signal cut


def _mid_second_level(output: Path) -> bool:
    """Every variant's first level written, and the second level's records started."""
    firsts = list(output.rglob("level-01-*"))
    return (
        bool(firsts)
        and all((first / "summary.json").is_file() for first in firsts)
        and any(path.stat().st_size for path in output.rglob("level-02-*/requests.jsonl"))
    )


KILLED_PARENT_COMMANDS = {
    "run --workers 2 --telemetry host": ["run", "--workers", "2", "--telemetry", "host", "--concurrency", "4"],
    "locust --headless": ["locust", "--headless", "--users", "2", "--run-time", "120s"],
}


@pytest.mark.slow
@pytest.mark.parametrize("command", list(KILLED_PARENT_COMMANDS))
def test_no_child_outlives_a_killed_loadgen(command: str, tmp_path: Path) -> None:
    """SIGKILL to loadgen alone (the OOM killer, ``kill -9``): the simulator, the sidecar, the
    worker processes and Locust it started all end (the parent-death signal), none keeps sending load."""
    output = tmp_path / "out"
    load = ["--sim-profile", "fixed:2,20", "--requests", "4000", "--warmup", "0", "--max-tokens", "20"]  # minutes
    line = loadgen_command(*KILLED_PARENT_COMMANDS[command], *load, "--output", str(output))
    process = started_until(line, lambda: records_written(output))
    try:
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 2  # the simulator and the sidecar or Locust, at least
        process.kill()
        process.wait()
        _gone, alive = psutil.wait_procs(children, timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    for child in alive:
        child.kill()
    assert not alive, [child.cmdline() for child in alive]


@pytest.mark.slow
def test_records_left_by_a_killed_sweep_are_reported_and_said_to_be_rebuilt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loadgen.cli import main
    from loadgen.report.rebuild import rebuilt_levels

    output = tmp_path / "out"
    line = loadgen_command("sweep", "--concurrency", "1,2", "--sim-profile", "fixed:2,20", "--requests", "400",
                           "--warmup", "0", "--max-tokens", "20", "--output", str(output))  # fmt: skip
    process = started_until(line, lambda: records_written(output))
    try:
        time.sleep(1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # nothing gets to write a summary
        process.wait()
    level = next(output.glob("level-01-*"))
    on_disk = sum(1 for line in (level / "requests.jsonl").read_text().splitlines() if line.endswith("}"))
    assert not (level / "summary.json").exists() and on_disk
    (rebuilt,) = rebuilt_levels(output, None)
    assert rebuilt.partial and rebuilt.stop_reason == "ended_without_summary" and rebuilt.derived
    assert rebuilt.completed + rebuilt.failed == on_disk and rebuilt.load.concurrency == 1
    assert main(["report", str(output), "--output", str(tmp_path / "report.html")]) == 0
    assert "rebuilt from requests.jsonl" in capsys.readouterr().err
    assert "rebuilt from requests.jsonl" in (tmp_path / "report.html").read_text()
