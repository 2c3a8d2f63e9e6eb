"""One outcome for every command: run, sweep, find-max, compare and Locust (headless) reach the same
exit code, and write the same verdict sections, for the same facts (``loadgen.run.outcome``):

- a ``--fail-on`` threshold breached: 99, ``thresholds`` with the breach in every level's summary;
- every request refused after the preflight: 3, ``validity`` marked ``mostly_failed``;
- records lost (a file that cannot grow): 74, ``output_errors`` in the summary;
- SIGINT to the process group mid-load: 130, the interrupted level ``partial``.

Each command runs as a user runs it, in a process of its own (``python -m loadgen``), against the
simulator or a refusing server on 127.0.0.1; none prints a traceback.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from loadgen.metrics.results import RunSummary
from tests.conftest import SimFactory
from tests.processes import records_written, signal_group_when
from tests.reliability.test_exit_codes import refusing_app
from tests.threaded_server import serve_in_thread

LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))
from loadgen.cli import main
sys.exit(main(sys.argv[1:]))
"""

COMMANDS: dict[str, list[str]] = {
    "run": ["run", "--concurrency", "2"],
    "sweep": ["sweep", "--concurrency", "1,2"],
    "find-max": ["sweep", "--concurrency", "1..2", "--find-max", "--slo", "e2e_p99=600s"],
    "compare": [
        "compare",
        "--concurrency",
        "2",
        "--variant",
        "base=endpoint",
        "--variant",
        'cand=endpoint {"seed": 1}',
    ],
    "locust": ["locust", "--headless", "--users", "2"],
}
PREFLIGHTS = {"compare": 2}  # requests a command sends before its load: one per variant
CASES: dict[str, dict[str, Any]] = {
    "thresholds": {"code": 99, "flags": ["--requests", "8", "--max-tokens", "4", "--fail-on", "ttft_p99>0.001ms"],
                   "run_time": "3s"},
    "errors": {"code": 3, "flags": ["--requests", "8", "--max-tokens", "4"], "run_time": "3s"},
    "lost records": {"code": 74, "flags": ["--requests", "16", "--max-tokens", "400"], "run_time": "3s"},
    "signal": {"code": 130, "flags": ["--requests", "400", "--max-tokens", "20"], "run_time": "120s"},
}  # fmt: skip


def refusing_after(preflights: int) -> web.Application:
    """A chat server that answers the preflight requests with one short stream, then refuses every request."""
    return refusing_app(lambda number, body: "refused by the test server" if number > preflights else None)


def command_line(command: str, case: str, url: str, output: Path) -> list[str]:
    flags = [*COMMANDS[command], "--endpoint", url, "--model", "sim-llm", "--warmup", "0", "--quiet",
             "--output", str(output), *CASES[case]["flags"]]  # fmt: skip
    if command == "locust":
        flags = [flag for flag in flags if flag != "--quiet"] + ["--run-time", CASES[case]["run_time"]]
    start = [sys.executable, "-c", LIMITED] if case == "lost records" else [sys.executable, "-m", "loadgen"]
    return [*start, *flags]


def summaries(output: Path) -> list[RunSummary]:
    return [RunSummary.from_json(json.loads(path.read_text())) for path in sorted(output.rglob("summary.json"))
            if path.parent.name != "workers" and "workers" not in path.parts]  # fmt: skip


def run_to_the_end(line: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(line, capture_output=True, text=True, timeout=300)


def interrupt_mid_load(line: list[str], output: Path) -> subprocess.CompletedProcess[str]:
    """SIGINT to the command's whole process group (as Ctrl-C in a terminal) once records are on
    disk; no process it started may be left."""
    signalled = signal_group_when(line, lambda: records_written(output), signal.SIGINT)
    assert not signalled.left_running
    return subprocess.CompletedProcess(line, signalled.returncode, signalled.printed, "")


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    from loadgen.sim.process import SimProcess, SimSpec
    from loadgen.sim.server import SimOptions

    with SimProcess(SimSpec("fixed:2,20", SimOptions(model="sim-llm"))) as sim:
        yield sim.url


def params() -> Iterator[Any]:
    for command in COMMANDS:
        for case in CASES:
            marks = [pytest.mark.slow] if command == "locust" else []
            yield pytest.param(command, case, id=f"{command}-{case.replace(' ', '-')}", marks=marks)


@pytest.mark.parametrize(("command", "case"), list(params()))
def test_every_command_has_the_same_outcome(command: str, case: str, simulator: str, tmp_path: Path,
                                            start_sim: SimFactory) -> None:  # fmt: skip
    output = tmp_path / "out"
    if case == "errors":
        with serve_in_thread(refusing_after(PREFLIGHTS.get(command, 1))) as url:
            result = run_to_the_end(command_line(command, case, url, output))
    elif case == "signal":
        result = interrupt_mid_load(command_line(command, case, simulator, output), output)
    else:
        url = start_sim("fixed:1,0").url if case == "lost records" else simulator
        result = run_to_the_end(command_line(command, case, url, output))
    printed = result.stdout + result.stderr
    assert "Traceback" not in printed
    assert result.returncode == CASES[case]["code"], printed[-3000:]
    levels = summaries(output)
    assert levels, "no summary.json written"
    assert all(level.validity is not None for level in levels)  # every level judged, by every command
    if case == "thresholds":
        for level in levels:
            assert [(t.threshold, t.passed) for t in level.thresholds or ()] == [("ttft_p99>0.001ms", False)]
    else:
        assert all(level.thresholds is None for level in levels)  # none asked for
    if case == "errors":
        assert all("mostly_failed" in level.validity.marks for level in levels if level.validity)
    if case == "lost records":
        assert any(level.output_errors for level in levels)
    if case == "signal":
        assert levels[-1].partial or any(level.partial for level in levels)
        assert all("partial" in level.validity.marks for level in levels if level.partial and level.validity)
