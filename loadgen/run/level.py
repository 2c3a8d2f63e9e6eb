"""Run tier: ``measure_level``, the one unit every command measures a level with (run, sweep,
find-max, compare): the server's metrics read before, the load (in this process or in worker
processes), the telemetry of its window, the server's metrics after, the verdict, and
``summary.json`` written once."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from msgspec.structs import replace

from loadgen.clock import MonotonicClock
from loadgen.config import LoadConfig, LoadMode
from loadgen.errors import LoadgenError, OutputError
from loadgen.metrics.results import RunSummary, Telemetry
from loadgen.run.collect import LevelSpec, collect_level, write_summary
from loadgen.run.events import Tone
from loadgen.run.judge import Judgement
from loadgen.run.spans import join_server_spans
from loadgen.run.target import Target
from loadgen.run.workers import collect_in_workers
from loadgen.telemetry.sidecar import SidecarSampler
from loadgen.telemetry.summary import summarize_window


@dataclass(frozen=True, slots=True)
class LevelResult:
    summary: RunSummary  # judged, as written to the level's summary.json
    acceptance_rate: float | None = None  # the server's speculative-decoding counters, when it has them


async def measure_level(target: Target, spec: LevelSpec) -> LevelResult:
    """One level measured, judged and written; its figures reported to the target's events."""
    if spec.trace_tag is None and target.traces is not None:
        spec = dataclasses.replace(spec, trace_tag=target.traces.next_level())
    other_spans = 0
    if target.spans is not None and spec.trace_tag is not None:
        target.spans.expect(spec.trace_tag)
        other_spans = target.spans.counts.other_traces
    before = await target.probes.scrape()
    sidecar_cpu_s = await _sample_now(target)
    if spec.workers > 1:
        summary = await collect_in_workers(target, spec)
    else:
        summary = await collect_level(target, spec)
    summary = await join_server_spans(target, spec, summary, other_spans)
    summary = replace(summary, telemetry=await _telemetry(target, summary, sidecar_cpu_s))
    reading = await target.probes.reading(before)
    plan = target.plan
    summary = Judgement(plan.max_error_rate, plan.fail_on).judge(replace(summary, server=reading.server), reading.lag)
    try:
        write_summary(spec.directory, summary)
    except OutputError:
        target.events.level_done(spec.label, summary, False)  # the figures on the screen are all that is left
        raise
    target.events.level_done(spec.label, summary, plan.sweep)
    return LevelResult(summary, reading.acceptance_rate)


async def _sample_now(target: Target) -> float | None:
    """A telemetry sample at the level's first instant; the sidecar's CPU time then."""
    sidecar = target.sidecar
    if sidecar is None:
        return None
    try:
        await asyncio.to_thread(sidecar.sample_now)
    except LoadgenError as exc:
        target.events.say(f"warning: {exc}: this level has no telemetry", Tone.WARNING)
    return sidecar.cpu_seconds()


async def _telemetry(target: Target, summary: RunSummary, cpu_at_start: float | None) -> Telemetry | None:
    """The sidecar's samples over the level's measured window (the idle time before the first send
    and after the last answer left out); None without a sidecar, or when it stopped answering."""
    sidecar = target.sidecar
    if sidecar is None:
        return None
    clock = summary.clock
    start, end = (clock.window_ns if clock else None) or (None, None)
    origin = clock.monotonic_start_ns if clock else 0
    try:
        await asyncio.to_thread(sidecar.sample_now)  # and one at its last
        now = MonotonicClock.now_ns()
        start_ns, end_ns = (origin + start, origin + end) if start is not None and end is not None else (origin, now)
        return await _window(sidecar, start_ns, end_ns, summary.tokens.output_total or 0, cpu_at_start)
    except LoadgenError as exc:
        target.events.say(f"warning: {exc}: this level has no telemetry", Tone.WARNING)
        return None


async def _window(sidecar: SidecarSampler, start_ns: int, end_ns: int, output_tokens: int,
                  cpu_at_start: float | None) -> Telemetry:  # fmt: skip
    samples = await asyncio.to_thread(sidecar.window, start_ns, end_ns)
    telemetry = summarize_window(samples, output_tokens, (end_ns - start_ns) / 1e9)
    sampler = await asyncio.to_thread(sidecar.stats)
    cpu_now = sidecar.cpu_seconds()
    if cpu_now is not None and cpu_at_start is not None and end_ns > start_ns:
        sampler["sidecar_cpu_percent_of_core"] = round(100 * (cpu_now - cpu_at_start) / ((end_ns - start_ns) / 1e9), 3)
    return replace(telemetry, sampler=sampler)


def level_directory_name(number: int, load: LoadConfig) -> str:
    """``level-01-c16``: a sweep's and a comparison's level directories are named alike."""
    return f"level-{number:02d}-{_level_name(load)}"


def _level_name(load: LoadConfig) -> str:
    if load.trace_file or load.stages:
        return "schedule"
    name = f"c{load.concurrency}" if load.mode is LoadMode.CLOSED else f"r{load.rate_rps:g}"
    return name + (f"-b{load.batch_size}" if load.batch_size > 1 else "")
