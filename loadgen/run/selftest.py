"""Top layer: ``loadgen selftest`` — the ceiling of this load box, before trusting its results.

Against zero-delay simulators started on this machine:
- streaming: 64 users × 512-token streams, with 1 and with N worker processes: chunks/s in total
  and per worker, and the client's CPU; from a server that writes in bulk (the simulator: many
  chunks per TCP segment, so per read) and from one that flushes every token's chunk on its own, as
  vLLM, TGI and llama.cpp do (the lean simulator, one ``send`` per chunk): the client's cost is per
  read, so the second is the ceiling for real servers;
- request rate: open-loop arrivals at a constant rate, rising with 1-token answers: the highest rate
  achieved within 1 % of the target with p99 schedule lag under 5 ms, and the lag (timing jitter)
  there.
The simulator shares this machine's CPUs, so these are the ceiling of client and server together:
a lower bound on what loadgen alone can drive.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadgen.errors import LoadgenError
from loadgen.metrics.results import RunSummary
from loadgen.run.session import run
from loadgen.scenario.plan import plan_from_flags
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions

RATE_STEPS = (250, 500, 1000, 2000, 4000, 8000, 16000)
RATE_TOLERANCE = 0.01
LAG_LIMIT_MS = 5.0


BULK = "bulk"
FLUSH = "flush"
SERVER_WRITES = {BULK: "simulator, bulk writes", FLUSH: "lean simulator, a write per token"}


@dataclass(frozen=True, slots=True)
class StreamingResult:
    server: str  # BULK or FLUSH
    workers: int
    chunks_per_s: float
    client_cpu_percent: list[float | None]


@dataclass(frozen=True, slots=True)
class RateResult:
    target_rps: float
    achieved_rps: float
    lag_p50_ms: float
    lag_p99_ms: float

    @property
    def held(self) -> bool:
        return abs(self.achieved_rps - self.target_rps) <= RATE_TOLERANCE * self.target_rps and (
            self.lag_p99_ms < LAG_LIMIT_MS
        )


def _run(url: str, flags: dict[str, Any]) -> RunSummary:
    """One level through the library (``loadgen.run.run``), its summary returned."""
    with tempfile.TemporaryDirectory() as directory:
        plan = plan_from_flags({"endpoint": url, "quiet": True, "output": str(Path(directory) / "out"), **flags})
        result = run(plan)
        if result.exit_code != 0:
            raise LoadgenError(f"selftest: a run against the simulator failed (exit code {result.exit_code})")
        return result.summaries[0]


def streaming(url: str, server: str, workers: int) -> StreamingResult:
    summary = _run(url, {"concurrency": "64", "requests": "512", "warmup": "0", "max_tokens": "512",
                         "workers": str(workers)})  # fmt: skip
    chunks = (summary.latency_ms.itl_chunk.count or 0) + summary.completed
    cpu = list(summary.workers.cpu_percent) if summary.workers else [summary.client.cpu_percent]
    return StreamingResult(server, workers, chunks / (summary.measured_window_s or 1.0), cpu)


def rate(url: str, target_rps: float, duration_s: float) -> RateResult:
    summary = _run(url, {"rate": str(target_rps), "arrival": "constant", "duration": f"{duration_s}s",
                         "max_tokens": "1", "max_inflight": "2000"})  # fmt: skip
    completed = summary.completed + summary.failed
    issued_window_s = summary.measured_window_s or 1.0
    lag = summary.latency_ms.schedule_lag
    return RateResult(target_rps, completed / issued_window_s, lag.p50 or 0.0, lag.p99 or 0.0)


def run_selftest(console: Console, duration_s: float = 3.0, output: Path | None = None) -> int:
    cores = os.cpu_count() or 1
    console.print(f"selftest: this machine has {cores} CPUs; the zero-delay simulators run beside the client")
    worker_counts = (1, min(cores, 4)) if cores > 1 else (1,)
    with SimProcess(SimSpec("zero-delay", SimOptions(lean=True))) as flushing:
        streams = [streaming(flushing.url, FLUSH, workers) for workers in worker_counts]
    with SimProcess(SimSpec("zero-delay", SimOptions())) as sim:
        streams += [streaming(sim.url, BULK, workers) for workers in worker_counts]
        rates: list[RateResult] = []
        for target in RATE_STEPS:
            rates.append(rate(sim.url, target, duration_s))
            if not rates[-1].held:
                break
    table = Table(title="streaming: 64 users × 512-token streams", title_justify="left")
    table.add_column("the server")
    for column in ("workers", "chunks/s", "chunks/s per worker", "client CPU % (per worker)"):
        table.add_column(column, justify="right")
    for stream in streams:
        table.add_row(SERVER_WRITES[stream.server], str(stream.workers), f"{stream.chunks_per_s:,.0f}",
                      f"{stream.chunks_per_s / stream.workers:,.0f}",
                      ", ".join("–" if cpu is None else f"{cpu:.0f}" for cpu in stream.client_cpu_percent))  # fmt: skip
    console.print(table)
    table = Table(title="open-loop request rate, 1-token answers", title_justify="left")
    for column in ("target req/s", "achieved req/s", "schedule lag p50 ms", "p99 ms", "held"):
        table.add_column(column, justify="right")
    for step in rates:
        table.add_row(f"{step.target_rps:,.0f}", f"{step.achieved_rps:,.1f}", f"{step.lag_p50_ms:.3f}",
                      f"{step.lag_p99_ms:.3f}", "yes" if step.held else "no")  # fmt: skip
    console.print(table)
    ceiling = max((step.target_rps for step in rates if step.held), default=0.0)

    def most(server: str) -> float:
        return max(stream.chunks_per_s for stream in streams if stream.server == server)

    console.print(f"ceiling of this box: {ceiling:,.0f} req/s open loop (within {RATE_TOLERANCE:.0%}, p99 lag < "
                  f"{LAG_LIMIT_MS:g} ms); {most(FLUSH):,.0f} streamed chunks/s from a server that flushes every "
                  f"token, {most(BULK):,.0f} from one that writes in bulk")  # fmt: skip
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        report = {
            "cpus": cores, "streaming": [asdict(r) for r in streams],
            "rates": [{**asdict(r), "held": r.held} for r in rates], "ceiling_requests_per_s": ceiling,
        }  # fmt: skip
        (output / "selftest.json").write_text(json.dumps(report, indent=2))
    return 0
