"""Top layer (under the CLI): running one level in several worker processes.

Python's one event loop per process caps what a client can drive; ``--workers N`` splits the load
(``loadgen.engine.partition``) over N processes, each with its own loop and connection pool. The
parent sends each worker its job on stdin (never on disk: headers can hold keys), waits until all
are READY, then starts them together on one time origin (``perf_counter_ns`` is the host's
monotonic clock, shared by processes). Each worker writes a complete single-process result in
``workers/wK/`` plus its exact aggregator state; the parent merges them into the same files a
single process writes: ``requests.jsonl``, ``*.hlog`` (interval by interval) and ``summary.json``
(from the merged counters and HDR histograms, so percentiles are exact, not averaged).

Worker protocol: stdout ``READY``, then ``P {"done": …, "failed": …}`` lines; stdin ``GO <ns>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from msgspec.structs import replace
from rich.console import Console

from loadgen.clock import MonotonicClock, wall_time_iso
from loadgen.config import Arrival, EndpointConfig, GenerationConfig, LoadConfig, LoadMode, SloTarget, Stage
from loadgen.engine.monitor import ClientReport
from loadgen.engine.partition import partition
from loadgen.errors import LoadgenError
from loadgen.eventloop import run_loop
from loadgen.metrics.aggregate import HISTOGRAM_NAMES, Aggregator, LiveSnapshot, aggregator_state, merge_state
from loadgen.metrics.histogram import Histogram
from loadgen.metrics.hlog import read_intervals
from loadgen.metrics.results import RunSummary, Workers, read_summary
from loadgen.metrics.summary import RunInfo, build_summary
from loadgen.prompts import Prompt
from loadgen.prompts.trace import load_trace
from loadgen.records import RequestRecord
from loadgen.redact import redactor
from loadgen.report.console import LiveStatus
from loadgen.report.files import HlogWriter, read_records, write_json
from loadgen.run.level import run_level
from loadgen.scenario.plan import Plan
from loadgen.tokenizer import load_token_counter

STARTUP_TIMEOUT_S = 60.0
SCHEDULE_DELAY_NS = 100_000_000  # workers set up their level, then all start the schedule together


def job_for(plan: Plan, endpoint: EndpointConfig, load: LoadConfig, directory: Path) -> dict[str, Any]:
    """One level of a plan as JSON, for another process."""
    return {
        "endpoint": dataclasses.asdict(endpoint),
        "generation": dataclasses.asdict(plan.generation),
        "load": dataclasses.asdict(load),
        "slo": [dataclasses.asdict(target) for target in plan.slo],
        "prompts": [dataclasses.asdict(prompt) for prompt in plan.prompts],
        "tokenizer": plan.tokenizer,
        "hlog_interval_s": plan.hlog_interval_s,
        "secrets": list(plan.secrets),
        "output_dir": str(directory),
        "save_text": plan.save_text,
    }


def plan_from_job(job: dict[str, Any]) -> Plan:
    """The ``Plan`` of one level that ``_job`` describes (also how Locust processes get theirs)."""

    endpoint_data = job["endpoint"]
    endpoint_data["headers"] = tuple(tuple(header) for header in endpoint_data["headers"])
    endpoint = EndpointConfig(**endpoint_data)
    generation_data = job["generation"]
    generation_data["extra_body"] = tuple(tuple(pair) for pair in generation_data["extra_body"])
    load = _load_from_job(job["load"])
    prompts = tuple(
        Prompt(**{**p, "messages": tuple(p["messages"]) if p["messages"] else None}) for p in job["prompts"]
    )
    trace = load_trace(load.trace_file, load.trace_speed, load.seed) if load.trace_file else None
    return Plan(
        endpoint=endpoint, generation=GenerationConfig(**generation_data), levels=(load,), prompts=prompts,
        output_dir=Path(job["output_dir"]), sweep=False, slo=tuple(SloTarget(**t) for t in job["slo"]),
        tokenizer=job["tokenizer"], hlog_interval_s=job["hlog_interval_s"], secrets=tuple(job["secrets"]), quiet=True,
        trace=tuple(trace) if trace is not None else None, save_text=job.get("save_text", False),
    )  # fmt: skip


def _load_from_job(data: dict[str, Any]) -> LoadConfig:
    values = dict(data)
    values["mode"] = LoadMode(values["mode"])
    values["arrival"] = Arrival(values["arrival"])
    values["stages"] = tuple(Stage(**stage) for stage in values["stages"])
    return LoadConfig(**values)


async def run_level_in_workers(
    plan: Plan, endpoint: EndpointConfig, load: LoadConfig, level_dir: Path, label: str, stop: asyncio.Event,
    console: Console,
) -> RunSummary:  # fmt: skip
    asked = plan.workers or 1
    workers = asked if load.mode is LoadMode.OPEN else min(asked, max(1, load.concurrency))
    level_dir.mkdir(parents=True, exist_ok=True)
    processes = []
    for worker in range(workers):
        directory = level_dir / "workers" / f"w{worker}"
        job = job_for(plan, endpoint, partition(load, worker, workers), directory)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "loadgen.run.workers", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )  # fmt: skip
        assert process.stdin is not None
        process.stdin.write((json.dumps(job) + "\n").encode())
        await process.stdin.drain()
        processes.append(process)
    progress = [{"done": 0, "failed": 0} for _ in processes]
    try:
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT_S)
            if line.strip() != b"READY":
                raise LoadgenError(f"a worker process did not start: {line.decode(errors='replace').strip()}")
        started_epoch_s, started_at = time.time(), wall_time_iso()
        run_start_ns = MonotonicClock.now_ns()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"GO {run_start_ns}\n".encode())
            await process.stdin.drain()
        readers = [asyncio.ensure_future(_read_progress(p, progress[i])) for i, p in enumerate(processes)]
        waiter: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(p.wait() for p in processes)))
        stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        status = LiveStatus(console, f"{label} ({workers} workers)", lambda: _snapshot(progress),
                            lambda: (MonotonicClock.now_ns() - run_start_ns) / 1e9, load.requests)  # fmt: skip
        with contextlib.nullcontext() if plan.quiet else status:
            await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                for process in processes:
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGINT)
            await waiter
        stopper.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return _merge(plan, endpoint, load, level_dir, workers, run_start_ns, started_epoch_s, started_at)


async def _read_progress(process: asyncio.subprocess.Process, progress: dict[str, int]) -> None:
    assert process.stdout is not None
    async for line in process.stdout:
        if line.startswith(b"P "):
            progress.update(json.loads(line[2:]))


def _snapshot(progress: list[dict[str, int]]) -> LiveSnapshot:
    return LiveSnapshot(completed=sum(p["done"] for p in progress), failed=sum(p["failed"] for p in progress),
                        warmup=0, ttft_p50_ms=None, ttft_p99_ms=None, output_tokens_per_s=None)  # fmt: skip


def _merge(plan: Plan, endpoint: EndpointConfig, load: LoadConfig, level_dir: Path, workers: int, run_start_ns: int,
           started_epoch_s: float, started_at: str) -> RunSummary:  # fmt: skip
    directories = [level_dir / "workers" / f"w{worker}" for worker in range(workers)]
    lost = [d for d in directories if not (d / "state.json").is_file() or not (d / "summary.json").is_file()]
    if len(lost) == len(directories):
        raise LoadgenError(f"every worker process of {level_dir} died before writing its results")
    aggregator = Aggregator(plan.slo)
    summaries = []
    for directory in directories:
        if directory in lost:
            # a worker that died (killed, out of memory): its records on disk are rebuilt into the
            # same histograms; what it had not yet written is lost, and the level is partial
            if (directory / "requests.jsonl").is_file():
                for record in read_records(directory / "requests.jsonl"):
                    aggregator.on_record(RequestRecord.from_json_dict(record))
            continue
        merge_state(aggregator, json.loads((directory / "state.json").read_text()))
        summaries.append(read_summary(directory / "summary.json"))
    with (level_dir / "requests.jsonl").open("wb") as merged:
        for directory in directories:
            with (directory / "requests.jsonl").open("rb") as part:
                shutil.copyfileobj(part, merged)
            (directory / "requests.jsonl").unlink()
    _merge_hlogs(directories, level_dir, started_epoch_s)
    clients = [summary.client for summary in summaries]
    cpu = [client.cpu_percent for client in clients if client.cpu_percent is not None]
    client = ClientReport(
        cpu_percent_mean=round(max(cpu), 1) if cpu else None,
        cpu_percent_max=max((c.cpu_percent_max for c in clients if c.cpu_percent_max is not None), default=None),
        cpu_saturated=any(c.cpu_saturated for c in clients),
        rss_bytes_max=max((c.rss_bytes_max for c in clients if c.rss_bytes_max is not None), default=None),
    )
    partial = bool(lost) or any(summary.partial for summary in summaries)
    info = RunInfo(
        endpoint=summaries[0].endpoint or "", api=endpoint.api, model=endpoint.model, load=load,
        stream=plan.generation.stream, started_at=started_at, ended_at=wall_time_iso(), partial=partial,
        stop_reason="worker_lost" if lost else "interrupted" if partial else "completed", client=client,
        slo=plan.slo,
        tokenizer=summaries[0].token_counting.tokenizer, listener_failures={},
        monotonic_start_ns=run_start_ns, epoch_start_s=started_epoch_s,
    )  # fmt: skip
    workers_figures = Workers(count=workers, cpu_percent=tuple(client.cpu_percent for client in clients),
                              lost=tuple(directory.name for directory in lost))  # fmt: skip
    return replace(build_summary(aggregator, info), workers=workers_figures)


def _merge_hlogs(directories: list[Path], level_dir: Path, started_epoch_s: float) -> None:
    """Interval by interval: the workers share one time origin and interval grid."""
    intervals: dict[str, dict[float, tuple[float, Histogram]]] = {name: {} for name in HISTOGRAM_NAMES}
    for directory in directories:
        for name in HISTOGRAM_NAMES:
            path = directory / f"{name}.hlog"
            if not path.is_file():
                continue
            template = Aggregator.new_histogram(name)
            for interval in read_intervals(path, template.highest_count):  # the workers share one time grid
                merged = intervals[name].setdefault(interval.start_s, (interval.end_s, template.empty_copy()))[1]
                merged.hdr.add(interval.histogram)
            path.unlink()
    writer = HlogWriter(level_dir, HISTOGRAM_NAMES, started_epoch_s)
    starts = sorted({start for by_start in intervals.values() for start in by_start})
    for start_s in starts:
        histograms = {name: by_start[start_s][1] for name, by_start in intervals.items() if start_s in by_start}
        end_s = max(by_start[start_s][0] for by_start in intervals.values() if start_s in by_start)
        writer.on_interval(round(start_s * 1e9), round(end_s * 1e9), histograms)
    writer.close()


def main() -> None:
    """A worker: read the job, say READY, wait for GO, run the level, write state.json."""

    plan = plan_from_job(json.loads(sys.stdin.readline()))
    endpoint, load, output = plan.endpoint, plan.levels[0], plan.output_dir
    token_counter = load_token_counter(plan.tokenizer) if plan.tokenizer else None
    print("READY", flush=True)
    command = sys.stdin.readline().split()
    if len(command) != 2 or command[0] != "GO":
        return
    run_start_ns = int(command[1])

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        holder: list[Aggregator] = []
        reporter = asyncio.ensure_future(_report_progress(holder))
        try:
            summary = await run_level(plan, endpoint, load, output, "worker", stop, token_counter,
                                      redactor(plan.secrets), Console(quiet=True), None, run_start_ns, holder.append,
                                      run_start_ns + SCHEDULE_DELAY_NS)  # fmt: skip
        finally:
            reporter.cancel()
        write_json(output / "summary.json", summary.to_json())  # this worker's share, read back by the parent's merge
        write_json(output / "state.json", aggregator_state(holder[0]))
        _print_progress(holder[0])

    run_loop(run())


def _print_progress(aggregator: Aggregator) -> None:
    print("P " + json.dumps({"done": aggregator.completed, "failed": aggregator.failed}), flush=True)


async def _report_progress(holder: list[Aggregator]) -> None:
    while True:
        await asyncio.sleep(0.5)
        if holder:
            _print_progress(holder[0])


if __name__ == "__main__":
    main()
