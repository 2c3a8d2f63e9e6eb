"""Run tier: one load level in this process: connect, run the load, and summarise it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msgspec.structs import replace
from rich.console import Console

from loadgen.clock import MonotonicClock, wall_time_iso
from loadgen.config import EndpointConfig, LoadConfig, LoadMode, SloTarget
from loadgen.engine.limits import concurrent_requests
from loadgen.engine.monitor import ClientMonitor
from loadgen.engine.publisher import Publisher
from loadgen.engine.runner import LoadRunner, StopReason, quiet_garbage_collector
from loadgen.errors import OutputError
from loadgen.metrics.aggregate import HISTOGRAM_NAMES, Aggregator
from loadgen.metrics.results import LostWrites, RunSummary, Telemetry
from loadgen.metrics.summary import RunInfo, build_summary, client_lag_warnings
from loadgen.parsing import public_url
from loadgen.prompts import PromptPicker
from loadgen.report.console import LiveStatus, print_run
from loadgen.report.files import HlogWriter, RecordWriter, WriteFailures, write_json
from loadgen.run.endpoint import make_transport, request_context
from loadgen.run.find_max import clearly_over_slo
from loadgen.scenario.plan import Plan
from loadgen.telemetry.sidecar import SidecarSampler
from loadgen.telemetry.summary import summarize_window
from loadgen.tokenizer import TokenCounter

OPEN_LOOP_CONNECTIONS_AHEAD = 256


async def run_level(
    plan: Plan,
    endpoint: EndpointConfig,
    load: LoadConfig,
    level_dir: Path,
    label: str,
    stop: asyncio.Event,
    token_counter: TokenCounter | None,
    redact: Callable[[str], str],
    console: Console,
    sidecar: SidecarSampler | None = None,
    run_start_ns: int | None = None,
    on_aggregator: Callable[[Aggregator], None] | None = None,
    schedule_origin_ns: int | None = None,
) -> RunSummary:
    """One level in this process; its summary is returned for the caller to complete and write
    (``write_level_summary``), or written here if the level broke off with an exception.
    ``run_start_ns``: a time origin shared with other worker processes; ``on_aggregator``: called
    with the live aggregator (worker progress and state)."""
    level_dir.mkdir(parents=True, exist_ok=True)
    clock = MonotonicClock()
    connections = load.concurrency if load.mode is LoadMode.CLOSED else (load.max_inflight or 10_000)
    transport = make_transport(endpoint, max(1, connections))
    await transport.connect(_connections_ahead(load))
    transport.start_load()
    run_start_ns = clock.now_ns() if run_start_ns is None else run_start_ns
    started_epoch_s = time.time()
    started_at = wall_time_iso()
    write_failures = WriteFailures()
    hlog = HlogWriter(level_dir, HISTOGRAM_NAMES, started_epoch_s, write_failures)
    aggregator = Aggregator(plan.slo, round(plan.hlog_interval_s * 1e9), hlog.on_interval)
    records = RecordWriter(level_dir / "requests.jsonl", write_failures)
    publisher = Publisher([aggregator, records])
    monitor = ClientMonitor(on_warning=lambda message: console.print(f"warning: {message}", style="bold yellow"))
    if on_aggregator is not None:
        on_aggregator(aggregator)
    context = request_context(
        plan,
        endpoint,
        transport,
        clock,
        token_counter,
        redact,
        run_start_ns,
        concurrent_requests(load) or OPEN_LOOP_CONNECTIONS_AHEAD,
    )
    level_stop = stop
    early: list[str] = []
    helpers: list[asyncio.Future[Any]] = []
    if plan.find_max is not None:  # a probe: stop it as soon as it clearly cannot meet the SLOs
        level_stop = asyncio.Event()
        helpers = [asyncio.ensure_future(_forward(stop, level_stop)),
                   asyncio.ensure_future(_watch_probe(aggregator, plan.slo, load, level_stop, early))]  # fmt: skip
    runner = LoadRunner(
        load, context, PromptPicker(plan.prompts, load.seed), publisher.publish, level_stop, plan.trace,
        schedule_origin_ns,
    )  # fmt: skip
    monitor_task = asyncio.ensure_future(monitor.run())
    sidecar_cpu = sidecar.cpu_seconds() if sidecar is not None else None
    if sidecar is not None:
        await asyncio.to_thread(sidecar.sample_now)  # a sample at the level's first instant
    stop_reason = StopReason.INTERRUPTED
    try:
        status = LiveStatus(
            console,
            label,
            aggregator.snapshot,
            lambda: (clock.now_ns() - run_start_ns) / 1e9,
            load.requests,
            load.duration_s,
        )
        with contextlib.nullcontext() if plan.quiet else status, quiet_garbage_collector():
            outcome = await runner.run()
        stop_reason = outcome.stop_reason
        if early and not stop.is_set():
            stop_reason = StopReason.STOPPED_EARLY
            console.print(f"{label}: stopped early, {early[0]}", style="yellow")
    finally:
        monitor_task.cancel()
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(monitor_task, *helpers, return_exceptions=True)
        await transport.close()
        records.close()
        info = RunInfo(
            endpoint=public_url(endpoint.url),
            api=endpoint.api,
            model=endpoint.model,
            load=load,
            stream=plan.generation.stream,
            started_at=started_at,
            ended_at=wall_time_iso(),
            partial=stop_reason is StopReason.INTERRUPTED,
            stop_reason=stop_reason.value,
            client=monitor.report(),
            slo=plan.slo,
            tokenizer=token_counter.name if token_counter else None,
            listener_failures=dict(publisher.failures),
            monotonic_start_ns=run_start_ns,
            epoch_start_s=started_epoch_s,
            transport=transport.report(),
        )
        summary = build_summary(aggregator, info)
        for message in client_lag_warnings(summary):
            console.print(f"warning: {label}: {message}", style="bold yellow")
        if sidecar is not None:
            await asyncio.to_thread(sidecar.sample_now)  # and one at its last
            start_ns, end_ns = measured_window(summary, run_start_ns, clock.now_ns())
            telemetry = await level_telemetry(sidecar, start_ns, end_ns, aggregator.output_tokens, sidecar_cpu)
            summary = replace(summary, telemetry=telemetry)
        hlog.close()
        summary = _warn_about_losses(console, label, publisher, write_failures, summary)
        if sys.exc_info()[0] is not None:  # the level broke off: keep what it measured
            write_level_summary(level_dir, summary, console)
    return summary


def write_level_summary(level_dir: Path, summary: RunSummary, console: Console) -> None:
    """``summary.json``, once per level, when everything (server figures, verdict, telemetry) is in
    it; a disk that refuses it leaves the figures on the screen."""
    try:
        write_json(level_dir / "summary.json", summary.to_json())
    except OutputError:
        print_run(console, summary)  # the figures on the screen are all that is left of this level
        raise


def _warn_about_losses(console: Console, label: str, publisher: Publisher, failures: WriteFailures,
                       summary: RunSummary) -> RunSummary:  # fmt: skip
    """A listener that failed, or a result file that could not be written, is said in the console
    and recorded in the summary: never a clean-looking run with records missing."""
    for name, message in publisher.first_failure.items():
        console.print(f"warning: {label}: {publisher.failures[name]} records failed in {name}: {message}",
                      style="bold yellow")  # fmt: skip
    if not failures.first:
        return summary
    for name, message in failures.first.items():
        console.print(f"warning: {label}: cannot write {name} ({message}): {failures.lost[name]} writes lost; "
                      "the summary still has every figure", style="bold red")  # fmt: skip
    lost = {name: LostWrites(error=error, lost_writes=failures.lost[name]) for name, error in failures.first.items()}
    return replace(summary, output_errors=lost)


def measured_window(summary: RunSummary, origin_ns: int, now_ns: int) -> tuple[int, int]:
    """The level's measured window on the monotonic clock, so telemetry means leave out the idle
    time before the first send and after the last answer (the drain, closing, writing results)."""
    start, end = (summary.clock.window_ns if summary.clock else None) or (None, None)
    if start is None or end is None:
        return origin_ns, now_ns
    return origin_ns + start, origin_ns + end


async def level_telemetry(
    sidecar: SidecarSampler, start_ns: int, end_ns: int, output_tokens: int, cpu_at_start: float | None
) -> Telemetry:
    samples = await asyncio.to_thread(sidecar.window, start_ns, end_ns)
    telemetry = summarize_window(samples, output_tokens, (end_ns - start_ns) / 1e9)
    sampler = await asyncio.to_thread(sidecar.stats)
    cpu_now = sidecar.cpu_seconds()
    if cpu_now is not None and cpu_at_start is not None and end_ns > start_ns:
        sampler["sidecar_cpu_percent_of_core"] = round(100 * (cpu_now - cpu_at_start) / ((end_ns - start_ns) / 1e9), 3)
    return replace(telemetry, sampler=sampler)


async def _forward(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _watch_probe(aggregator: Aggregator, slo: tuple[SloTarget, ...], load: LoadConfig, stop: asyncio.Event,
                       reasons: list[str]) -> None:  # fmt: skip
    minimum = max(8, 2 * load.concurrency) if load.mode is LoadMode.CLOSED else max(20, round(2 * (load.rate_rps or 0)))
    while not stop.is_set():
        await asyncio.sleep(0.5)
        reason = clearly_over_slo(aggregator, slo, minimum)
        if reason is not None:
            reasons.append(reason)
            stop.set()
            return


def _connections_ahead(load: LoadConfig) -> int:
    """Connections to open before the clock starts: one per user in closed loop; in open loop as
    many as may be in flight, up to ``OPEN_LOOP_CONNECTIONS_AHEAD`` (more open on demand, counted
    as reconnects)."""
    if load.mode is LoadMode.CLOSED:
        return load.concurrency
    return min(load.max_inflight or OPEN_LOOP_CONNECTIONS_AHEAD, OPEN_LOOP_CONNECTIONS_AHEAD)


def level_directory_name(number: int, load: LoadConfig) -> str:
    """``level-01-c16``: a sweep's and a comparison's level directories are named alike."""
    return f"level-{number:02d}-{_level_name(load)}"


def _level_name(load: LoadConfig) -> str:
    if load.trace_file or load.stages:
        return "schedule"
    name = f"c{load.concurrency}" if load.mode is LoadMode.CLOSED else f"r{load.rate_rps:g}"
    return name + (f"-b{load.batch_size}" if load.batch_size > 1 else "")
