"""Never a clean-looking bad run: each level's verdict, from loadgen's own lag, the target's own
lag and the error rate; a simulator starved of CPU is caught."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import sys
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from loadgen.cli import main
from loadgen.metrics.results import RunSummary
from loadgen.metrics.validity import level_validity, target_lag
from loadgen.report.console import sweep_table
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions


def summary(completed: int = 100, failed: int = 0, saturated: bool = False, lag: float | None = None,
            partial: bool = False) -> RunSummary:  # fmt: skip
    return RunSummary.from_json({
        "requests": {"completed": completed, "failed": failed},
        "client": {"saturated": saturated, "cpu_saturated": saturated, "cpu_percent_max": 97.0},
        "target": None if lag is None else {"source": "sim", "lag_fraction": lag, "late_s": lag * 2.0,
                                            "modelled_s": 2.0},
        "partial": partial,
        "stop_reason": "interrupted" if partial else "completed",
    })  # fmt: skip


def test_verdicts_in_their_order() -> None:
    assert level_validity(summary()).verdict == "valid"
    assert level_validity(summary(lag=0.04)).verdict == "valid"  # under the 5 % limit
    lagging = level_validity(summary(lag=0.41))
    assert lagging.verdict == "target_lagging" and "41% behind its modelled engine time" in lagging.reasons[0]
    assert level_validity(summary(saturated=True, lag=0.41)).verdict == "client_saturated"
    assert level_validity(summary(completed=8, failed=192, saturated=True)).verdict == "mostly_failed"
    assert level_validity(summary(completed=0, failed=3)).verdict == "mostly_failed"
    cut = level_validity(summary(partial=True))
    assert cut.valid and cut.marks == ("partial",)


def test_a_busy_machine_is_not_blamed_on_loadgen() -> None:
    """Before: "loadgen was the bottleneck" at c=1 while the host's CPU was at 100 % and loadgen's at 3.6 %."""
    late = {"saturated": True, "cpu_saturated": False, "schedule_lag_saturated": True, "read_lag_saturated": False,
            "send_lag_ms": {"p99": 12.5}, "cpu_percent_max": 3.6}  # fmt: skip
    busy = level_validity(RunSummary.from_json({"requests": {"completed": 100}, "client": {
        **late, "host_cpu_percent_max": 100.0}}))  # fmt: skip
    assert busy.verdict == "host_busy" and busy.marks == ("host_busy",)
    assert busy.reasons[0] == ("the machine was busy with other work (CPU 100% of all cores, loadgen at most 4% of "
                               "one): send lag p99 12.5 ms were its delay, included in every latency; measure on a "
                               "quieter machine")  # fmt: skip
    quiet_host = level_validity(RunSummary.from_json({"requests": {"completed": 100}, "client": {
        **late, "host_cpu_percent_max": 40.0}}))  # fmt: skip
    assert quiet_host.verdict == "client_saturated" and quiet_host.reasons[0].startswith("loadgen was the bottleneck")
    own_cpu = level_validity(RunSummary.from_json({"requests": {"completed": 100}, "client": {
        **late, "cpu_saturated": True, "cpu_percent_max": 99.0, "host_cpu_percent_max": 100.0}}))  # fmt: skip
    assert own_cpu.verdict == "client_saturated"


def test_target_lag_between_two_scrapes() -> None:
    before = {"target_modelled_seconds_total": 10.0, "target_late_seconds_total": 1.0}
    after = {"target_modelled_seconds_total": 12.0, "target_late_seconds_total": 1.5}
    lag = target_lag(before, after)
    assert lag is not None and lag.lag_fraction == 0.25
    assert target_lag(before, {"requests_running": 3.0}) is None  # a server that does not say
    assert target_lag(None, after) is None


def test_the_sweep_table_says_it_in_words_without_colour() -> None:
    levels = []
    for concurrency, validity in ((8, summary()), (64, summary(lag=0.41))):
        levels.append({"load": {"mode": "closed", "concurrency": concurrency, "rate": None, "batch_size": 1},
                       "partial": False, "client": {"saturated": False}, "requests": {"failed": 0},
                       "throughput": {"requests_per_s": 1.0, "output_tokens_per_s": 10.0},
                       "latency_ms": {m: {"p50": 1.0, "p99": 2.0} for m in ("ttft", "tpot", "e2e")},
                       "validity": msgspec.to_builtins(level_validity(validity))})  # fmt: skip
    output = io.StringIO()
    typed = [RunSummary.from_json(level) for level in levels]
    Console(file=output, width=120, color_system=None).print(sweep_table(typed))
    text = " ".join(output.getvalue().split())  # the caption wraps
    assert "✗target" in text and "ok" in text and "the server lagged its own model" in text


def _lowest_group_priority(pid: int) -> None:
    """The simulator runs in a session of its own, and with the kernel's autogroup scheduling a
    XX
        priority for its group (nice 19) lets the hogs starve it, as a busy host does."""
    autogroup = Path(f"/proc/{pid}/autogroup")
    if autogroup.exists():
        with contextlib.suppress(OSError):
            autogroup.write_text("10")


def _hog(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    while True:
        pass


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_a_starved_simulator_is_marked_target_lagging(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    sim_cpu, own_cpus = cpus[0], set(cpus[1:]) or {cpus[0]}
    context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    with SimProcess(SimSpec("llama2-7b-h100", SimOptions())) as sim:
        os.sched_setaffinity(sim.pid, {sim_cpu})
        _lowest_group_priority(sim.pid)
        original = os.sched_getaffinity(0)
        hogs = [context.Process(target=_hog, args=(sim_cpu,), daemon=True) for _ in range(6)]
        try:
            os.sched_setaffinity(0, own_cpus)
            for hog in hogs:
                hog.start()
            code = main(["run", "--endpoint", sim.url, "--api", "openai-chat", "--model", "sim-llm",
                         "--concurrency", "32", "--requests", "64", "--max-tokens", "64",
                         "--output", str(tmp_path)])  # fmt: skip
        finally:
            for hog in hogs:
                hog.kill()
                hog.join()
            os.sched_setaffinity(0, original)
    assert code == 0
    result = json.loads((tmp_path / "summary.json").read_text())
    assert result["target"]["lag_fraction"] > 0.05, result["target"]
    # the server's own counters decide the mark; the verdict is the first mark, and a starved
    # server's bursts may also make loadgen's reads late (client_saturated comes first then)
    assert "target_lagging" in result["validity"]["marks"] and not result["validity"]["valid"]
    printed = " ".join(capsys.readouterr().out.split())
    assert "verdict: INVALID:" in printed and "the simulated server ran" in printed


def test_the_headline_sweep_table_fits_80_columns_uncut() -> None:
    """Before: an 80-column terminal cut the headline table ('1,9…', 'c=3…'). The widest figures a
    headline sweep (1..64 users against the simulator) prints, in every cell."""
    levels = []
    for concurrency in (1, 2, 4, 8, 16, 32, 64):
        valid = concurrency < 64
        validity = summary() if valid else summary(saturated=True)
        levels.append({"load": {"mode": "closed", "concurrency": concurrency, "rate": None, "batch_size": 1},
                       "partial": False, "client": {"saturated": not valid}, "requests": {"failed": 12},
                       "throughput": {"requests_per_s": 36.41, "output_tokens_per_s": 9321.4},
                       "latency_ms": {m: {"p50": 1234.5, "p99": 2345.6, "count": 40} for m in ("ttft", "tpot", "e2e")},
                       "validity": msgspec.to_builtins(level_validity(validity))})  # fmt: skip
    output = io.StringIO()
    typed = [RunSummary.from_json(level) for level in levels]
    Console(file=output, width=80, color_system=None).print(sweep_table(typed, ()))
    rows = [line for line in output.getvalue().splitlines() if line.lstrip().startswith("c=")]
    assert len(rows) == 7 and "…" not in output.getvalue()
    assert all("36.41" in row and "9,321" in row and "1,234" in row and "2,346~" in row for row in rows)  # p99 of 40
    assert "✗client" in rows[-1] and max(len(line) for line in output.getvalue().splitlines()) <= 80
