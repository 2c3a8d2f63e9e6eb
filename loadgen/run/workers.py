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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen.clock import MonotonicClock, wall_time_iso
from loadgen.config import Arrival, EndpointConfig, GenerationConfig, LoadConfig, LoadMode, SloTarget, Stage
from loadgen.engine.monitor import ClientReport
from loadgen.engine.partition import partition
from loadgen.engine.runner import StopReason
from loadgen.errors import LoadgenError
from loadgen.eventloop import run_loop
from loadgen.lifetime import ends_with_this_process
from loadgen.metrics.aggregate import HISTOGRAM_NAMES, Aggregator, LiveSnapshot, aggregator_state, merge_state
from loadgen.metrics.histogram import Histogram
from loadgen.metrics.hlog import read_intervals
from loadgen.metrics.results import Client, Clock, Connections, RunSummary, Workers, read_summary
from loadgen.metrics.summary import RunInfo
from loadgen.metrics.thresholds import parse_threshold
from loadgen.metrics.validity import DEFAULT_MAX_ERROR_RATE
from loadgen.prompts import Prompt
from loadgen.prompts.sessions import session_load
from loadgen.prompts.trace import load_trace
from loadgen.report.files import HlogWriter, open_for_writing, read_request_records, write_json
from loadgen.run.collect import LevelSpec, Sections, SharedStart, collect_level, summarize, write_summary
from loadgen.run.events import Progress, SilentEvents
from loadgen.run.loop import stop_on_signals
from loadgen.run.target import Target, unprepared_target
from loadgen.scenario.plan import Plan
from loadgen.transport.base import TransportReport
from loadgen.transport.stamps import StampSource

STARTUP_TIMEOUT_S = 60.0
SCHEDULE_DELAY_NS = 100_000_000  # workers set up their level, then all start the schedule together


def job_for(plan: Plan, endpoint: EndpointConfig, load: LoadConfig, directory: Path,
            trace_tag: str | None = None) -> dict[str, Any]:  # fmt: skip
    """One level of a plan as JSON, for another process."""
    return {
        "trace_tag": trace_tag,
        "server_timings": plan.server_timings,
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
        "fail_on": [threshold.text for threshold in plan.fail_on],
        "max_error_rate": plan.max_error_rate,
        "sessions": None if plan.sessions is None else {"file": plan.sessions.file, "history": plan.sessions.history,
                                                         "think": plan.sessions.think, "seed": plan.sessions.seed},
        "session_header": plan.session_header,
    }  # fmt: skip


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
    trace = load_trace(load.trace_file, load.trace_speed, load.seed, load.trace_format) if load.trace_file else None
    sessions = job.get("sessions")
    return Plan(
        endpoint=endpoint, generation=GenerationConfig(**generation_data), levels=(load,), prompts=prompts,
        output_dir=Path(job["output_dir"]), sweep=False, slo=tuple(SloTarget(**t) for t in job["slo"]),
        tokenizer=job["tokenizer"], hlog_interval_s=job["hlog_interval_s"], secrets=tuple(job["secrets"]), quiet=True,
        trace=tuple(trace) if trace is not None else None, save_text=job.get("save_text", False),
        fail_on=tuple(parse_threshold(text) for text in job.get("fail_on", ())),
        max_error_rate=job.get("max_error_rate", DEFAULT_MAX_ERROR_RATE),
        sessions=(session_load(sessions["file"], sessions["history"], sessions["think"], sessions["seed"])
                  if sessions else None),
        session_header=job.get("session_header"),
        server_timings=job.get("server_timings", "auto"),
    )  # fmt: skip


def _load_from_job(data: dict[str, Any]) -> LoadConfig:
    values = dict(data)
    values["mode"] = LoadMode(values["mode"])
    values["arrival"] = Arrival(values["arrival"])
    values["stages"] = tuple(Stage(**stage) for stage in values["stages"])
    return LoadConfig(**values)


async def collect_in_workers(target: Target, spec: LevelSpec) -> RunSummary:
    """One level split over ``spec.workers`` processes, started together, merged exactly."""
    load = spec.load
    count = spec.workers if load.mode is LoadMode.OPEN else min(spec.workers, max(1, load.concurrency))
    spec.directory.mkdir(parents=True, exist_ok=True)
    processes = [await _start_worker(target, spec, worker, count) for worker in range(count)]
    try:
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT_S)
            if line.strip() != b"READY":
                raise LoadgenError(f"a worker process did not start: {await _why_not_ready(process, line)}")
        started_epoch_s, started_at = time.time(), wall_time_iso()
        run_start_ns = MonotonicClock.now_ns()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"GO {run_start_ns}\n".encode())
            await process.stdin.drain()
        await _wait_for_workers(target, spec, processes, run_start_ns)
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    start = WorkersStart(count, run_start_ns, started_epoch_s, started_at)
    return _merge(target, spec, start)


async def _start_worker(target: Target, spec: LevelSpec, worker: int, count: int) -> asyncio.subprocess.Process:
    job = job_for(target.plan, target.endpoint, partition(spec.load, worker, count),
                  spec.directory / "workers" / f"w{worker}", spec.trace_tag)  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadgen.run.workers", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, limit=1 << 20, preexec_fn=ends_with_this_process(),
    )  # fmt: skip
    assert process.stdin is not None
    process.stdin.write((json.dumps(job) + "\n").encode())
    await process.stdin.drain()
    return process


async def _why_not_ready(process: asyncio.subprocess.Process, line: bytes) -> str:
    """What a worker said instead of READY: its line, else the end of its stderr, else its exit status."""
    said = line.decode(errors="replace").strip()
    if said:
        return said
    try:
        code = await asyncio.wait_for(process.wait(), 5)
    except asyncio.TimeoutError:
        return "it said nothing and is still running"
    assert process.stderr is not None
    error = (await process.stderr.read()).decode(errors="replace").strip().splitlines()
    return f"exit status {code}" + (f": {error[-1]}" if error else " and nothing on stderr")


async def _wait_for_workers(target: Target, spec: LevelSpec, processes: list[asyncio.subprocess.Process],
                            run_start_ns: int) -> None:  # fmt: skip
    """Until every worker ends; on the command's stop, each is told to stop (SIGINT) and waited for."""
    progress = [{"done": 0, "failed": 0} for _ in processes]
    readers = [asyncio.ensure_future(_read_progress(p, progress[i])) for i, p in enumerate(processes)]
    drains = [asyncio.ensure_future(_drain(p)) for p in processes]
    waiter: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(p.wait() for p in processes)))
    stopper: asyncio.Future[Any] = asyncio.ensure_future(target.stop.wait())
    live = Progress(f"{spec.label} ({len(processes)} workers)", lambda: _snapshot(progress),
                    lambda: (MonotonicClock.now_ns() - run_start_ns) / 1e9, spec.load)  # fmt: skip
    with target.events.live(live) if not target.plan.quiet else contextlib.nullcontext():
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        if target.stop.is_set():
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)
        await waiter
    stopper.cancel()
    await asyncio.gather(*readers, *drains, return_exceptions=True)


async def _drain(process: asyncio.subprocess.Process) -> None:
    """A worker's stderr, read so that a full pipe never blocks it."""
    assert process.stderr is not None
    while await process.stderr.read(65536):
        pass


async def _read_progress(process: asyncio.subprocess.Process, progress: dict[str, int]) -> None:
    assert process.stdout is not None
    async for line in process.stdout:
        if line.startswith(b"P "):
            progress.update(json.loads(line[2:]))


def _snapshot(progress: list[dict[str, int]]) -> LiveSnapshot:
    return LiveSnapshot(completed=sum(p["done"] for p in progress), failed=sum(p["failed"] for p in progress),
                        warmup=0, ttft_p50_ms=None, ttft_p99_ms=None, output_tokens_per_s=None)  # fmt: skip


@dataclass(frozen=True, slots=True)
class WorkersStart:
    count: int
    run_start_ns: int
    started_epoch_s: float
    started_at: str


def _merge(target: Target, spec: LevelSpec, start: WorkersStart) -> RunSummary:
    """The workers' results as one level: their exact aggregator states (or, for a worker that
    died, its records on disk), requests.jsonl and .hlog files, and how their transports stamped."""
    directories = [spec.directory / "workers" / f"w{worker}" for worker in range(start.count)]
    lost = [d for d in directories if not (d / "state.json").is_file() or not (d / "summary.json").is_file()]
    if len(lost) == len(directories):
        raise LoadgenError(f"every worker process of {spec.directory} died before writing its results")
    aggregator = Aggregator(target.plan.slo)
    summaries = []
    for directory in directories:
        if directory in lost:
            # a worker that died (killed, out of memory): its records on disk are rebuilt into the
            # same histograms; what it had not yet written is lost, and the level is partial
            if (directory / "requests.jsonl").is_file():
                for record in read_request_records(directory / "requests.jsonl"):
                    aggregator.on_record(record)
            continue
        merge_state(aggregator, json.loads((directory / "state.json").read_text()))
        summaries.append(read_summary(directory / "summary.json"))
    _merge_records(directories, spec.directory)
    _merge_hlogs(directories, spec.directory, start.started_epoch_s)
    clients = [summary.client for summary in summaries]
    partial = bool(lost) or any(summary.partial for summary in summaries)
    info = RunInfo(
        endpoint=summaries[0].endpoint or "", api=target.endpoint.api, model=target.endpoint.model, load=spec.load,
        stream=target.plan.generation.stream, started_at=start.started_at, ended_at=wall_time_iso(),
        partial=partial, stop_reason=_stop_reason(bool(lost), partial).value,
        client=_merged_client(clients), slo=target.plan.slo, tokenizer=summaries[0].token_counting.tokenizer,
        listener_failures={}, monotonic_start_ns=start.run_start_ns, epoch_start_s=start.started_epoch_s,
        transport=merged_transport(summaries),
    )  # fmt: skip
    workers = Workers(count=start.count, cpu_percent=tuple(client.cpu_percent for client in clients),
                      lost=tuple(directory.name for directory in lost))  # fmt: skip
    return summarize(aggregator, info, Sections(workers=workers))


def _stop_reason(lost: bool, partial: bool) -> StopReason:
    if lost:
        return StopReason.WORKER_LOST
    return StopReason.INTERRUPTED if partial else StopReason.COMPLETED


def _merge_records(directories: list[Path], level_dir: Path) -> None:
    with open_for_writing(level_dir / "requests.jsonl") as merged:
        for directory in directories:
            if (directory / "requests.jsonl").is_file():
                with (directory / "requests.jsonl").open("rb") as part:
                    shutil.copyfileobj(part, merged)
                (directory / "requests.jsonl").unlink()


def _merged_client(clients: list[Client]) -> ClientReport:
    cpu = [client.cpu_percent for client in clients if client.cpu_percent is not None]
    return ClientReport(
        cpu_percent_mean=round(max(cpu), 1) if cpu else None,
        cpu_percent_max=max((c.cpu_percent_max for c in clients if c.cpu_percent_max is not None), default=None),
        cpu_saturated=any(c.cpu_saturated for c in clients),
        rss_bytes_max=max((c.rss_bytes_max for c in clients if c.rss_bytes_max is not None), default=None),
        host_cpu_percent_max=max(
            (c.host_cpu_percent_max for c in clients if c.host_cpu_percent_max is not None), default=None
        ),
    )


def merged_transport(summaries: list[RunSummary]) -> TransportReport:
    """How the workers' transports stamped and connected, added up: the stamp source they used
    (``mixed`` if they differ), and their kernel-stamped reads, anomalies and connections summed."""
    clocks = [summary.clock or Clock() for summary in summaries]
    sources = {clock.stamp_source for clock in clocks if clock.stamp_source}
    connections = [summary.client.connections or Connections() for summary in summaries]
    return TransportReport(
        stamp_source=sources.pop() if len(sources) == 1 else "mixed" if sources else StampSource.USER.value,
        kernel_stamped_reads=sum(clock.kernel_stamped_reads for clock in clocks),
        stamp_anomalies=sum(clock.stamp_anomalies for clock in clocks),
        connections_opened=sum(c.opened for c in connections),
        connections_before_load=sum(c.opened_before_load for c in connections),
        retries=sum(c.retried_requests for c in connections),
        closes_announced=sum(c.closes_announced for c in connections),
        read_pauses=sum(clock.read_batching_pauses for clock in clocks),
    )


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
    job = json.loads(sys.stdin.readline())
    plan = plan_from_job(job)
    print("READY", flush=True)
    command = sys.stdin.readline().split()
    if len(command) != 2 or command[0] != "GO":
        return
    run_loop(_work(plan, int(command[1]), job.get("trace_tag")))


async def _work(plan: Plan, run_start_ns: int, trace_tag: str | None = None) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    target = unprepared_target(plan, SilentEvents(), stop)
    shared = SharedStart(run_start_ns, run_start_ns + SCHEDULE_DELAY_NS)
    spec = LevelSpec(plan.levels[0], plan.output_dir, "worker", trace_tag=trace_tag)
    reporter = asyncio.ensure_future(_report_progress(shared.aggregators))
    try:
        summary = await collect_level(target, spec, shared)
    finally:
        reporter.cancel()
    write_summary(plan.output_dir, summary)  # this worker's share, read back by the parent's merge
    write_json(plan.output_dir / "state.json", aggregator_state(shared.aggregators[0]))
    _print_progress(shared.aggregators[0])


def _print_progress(aggregator: Aggregator) -> None:
    print("P " + json.dumps({"done": aggregator.completed, "failed": aggregator.failed}), flush=True)


async def _report_progress(holder: list[Aggregator]) -> None:  # the worker's one aggregator, once it exists
    while True:
        await asyncio.sleep(0.5)
        if holder:
            _print_progress(holder[0])


if __name__ == "__main__":
    main()
