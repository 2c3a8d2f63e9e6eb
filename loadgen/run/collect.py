"""Run tier: one level's load in this process, its records collected into a ``RunSummary``; and
the one place a level's summary is assembled (``summarize``) and concluded (``conclude``: judged
and written once), which the worker merge and Locust's recorder use too."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from loadgen.clock import MonotonicClock, wall_time_iso
from loadgen.config import LoadConfig, LoadMode
from loadgen.engine.limits import concurrent_requests
from loadgen.engine.monitor import ClientMonitor
from loadgen.engine.publisher import Publisher
from loadgen.engine.runner import LoadRunner, StopReason, quiet_garbage_collector
from loadgen.metrics.aggregate import HISTOGRAM_NAMES, Aggregator
from loadgen.metrics.results import LocustTest, LostWrites, RunSummary, TargetLag, Telemetry, Workers
from loadgen.metrics.summary import RunInfo, build_summary, client_lag_warnings
from loadgen.parsing import public_url
from loadgen.prompts import PromptPicker
from loadgen.report.files import HlogWriter, RecordWriter, WriteFailures, write_json
from loadgen.run.events import Progress, Tone
from loadgen.run.find_max import clearly_over_slo
from loadgen.run.judge import Judgement
from loadgen.run.target import Target

OPEN_LOOP_CONNECTIONS_AHEAD = 256


@dataclass(frozen=True, slots=True)
class LevelSpec:
    """One level of a command: its load, where its files go, and how it is named on the console."""

    load: LoadConfig
    directory: Path
    label: str
    workers: int = 1
    trace_tag: str | None = None  # the first 20 hex digits of its requests' trace ids (``Target.traces``)


@dataclass(frozen=True, slots=True)
class SharedStart:
    """A worker process's level: one time origin shared with the other workers, and its live aggregator."""

    run_start_ns: int
    schedule_origin_ns: int
    aggregators: list[Aggregator] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Sections:
    """What a level's summary holds beyond its aggregator's figures."""

    telemetry: Telemetry | None = None
    workers: Workers | None = None
    locust: LocustTest | None = None
    output_errors: dict[str, LostWrites] | None = None


def summarize(aggregator: Aggregator, info: RunInfo, sections: Sections = Sections()) -> RunSummary:
    """A level's summary, from one process's aggregator, the workers' merged one, or Locust's."""
    return replace(build_summary(aggregator, info), telemetry=sections.telemetry, workers=sections.workers,
                   locust=sections.locust, output_errors=sections.output_errors)  # fmt: skip


def conclude(summary: RunSummary, judgement: Judgement, directory: Path, lag: TargetLag | None = None) -> RunSummary:
    """The level judged (``loadgen.run.judge``) and its ``summary.json`` written, once."""
    summary = judgement.judge(summary, lag)
    write_summary(directory, summary)
    return summary


def write_summary(directory: Path, summary: RunSummary) -> None:
    write_json(directory / "summary.json", summary.to_json())


class Recording:
    """A level's listeners: the aggregator, ``requests.jsonl`` and the ``.hlog`` interval logs."""

    def __init__(self, directory: Path, target: Target) -> None:
        self.started_epoch_s, self.started_at = time.time(), wall_time_iso()
        self.failures = WriteFailures()
        self.hlog = HlogWriter(directory, HISTOGRAM_NAMES, self.started_epoch_s, self.failures)
        plan = target.plan
        self.aggregator = Aggregator(plan.slo, round(plan.hlog_interval_s * 1e9), self.hlog.on_interval)
        self.records = RecordWriter(directory / "requests.jsonl", self.failures)
        self.publisher = Publisher([self.aggregator, self.records])

    def lost_writes(self, target: Target, label: str) -> dict[str, LostWrites] | None:
        """A listener that failed, or a result file that could not be written, is said and recorded:
        never a clean-looking run with records missing."""
        publisher, failures = self.publisher, self.failures
        for name, message in publisher.first_failure.items():
            target.events.say(f"warning: {label}: {publisher.failures[name]} records failed in {name}: {message}",
                              Tone.WARNING)  # fmt: skip
        for name, message in failures.first.items():
            target.events.say(f"warning: {label}: cannot write {name} ({message}): {failures.lost[name]} writes "
                              "lost; the summary still has every figure", Tone.PROBLEM)  # fmt: skip
        lost = {name: LostWrites(error=error, lost_writes=failures.lost[name])
                for name, error in failures.first.items()}  # fmt: skip
        return lost or None


async def collect_level(target: Target, spec: LevelSpec, shared: SharedStart | None = None) -> RunSummary:
    """One level in this process: connect, run the load, and summarise it (not yet judged). A
    level that breaks off with an exception still writes the summary of what it measured."""
    spec.directory.mkdir(parents=True, exist_ok=True)
    clock, load = MonotonicClock(), spec.load
    inflight = concurrent_requests(load)  # the connection pool and the body budget share one bound
    transport = target.transport(max(1, inflight))
    await transport.connect(_connections_ahead(load))
    transport.start_load()
    run_start_ns = clock.now_ns() if shared is None else shared.run_start_ns
    recording = Recording(spec.directory, target)
    if shared is not None:
        shared.aggregators.append(recording.aggregator)
    monitor = ClientMonitor(on_warning=lambda message: target.events.say(f"warning: {message}", Tone.WARNING))
    stop_reason = StopReason.INTERRUPTED
    try:
        context = target.request_context(transport, clock, run_start_ns, inflight, spec.trace_tag)
        watch = ProbeWatch(target, load, recording.aggregator) if target.plan.find_max is not None else None
        runner = LoadRunner(load, context, PromptPicker(target.plan.prompts, load.seed),
                            recording.publisher.publish, watch.stop if watch is not None else target.stop,
                            target.plan.trace, shared.schedule_origin_ns if shared is not None else None,
                            target.plan.sessions)  # fmt: skip
        elapsed_s = lambda: (clock.now_ns() - run_start_ns) / 1e9  # noqa: E731
        progress = Progress(spec.label, recording.aggregator.snapshot, elapsed_s, load)
        stop_reason = await _drive(target, progress, runner, monitor, watch)
    finally:
        await transport.close()
        recording.records.close()
        info = RunInfo(
            endpoint=public_url(target.endpoint.url), api=target.endpoint.api, model=target.endpoint.model,
            load=load, stream=target.plan.generation.stream, started_at=recording.started_at,
            ended_at=wall_time_iso(), partial=stop_reason is StopReason.INTERRUPTED, stop_reason=stop_reason.value,
            client=monitor.report(), slo=target.plan.slo,
            tokenizer=target.token_counter.name if target.token_counter else None,
            listener_failures=dict(recording.publisher.failures), monotonic_start_ns=run_start_ns,
            epoch_start_s=recording.started_epoch_s, transport=transport.report(),
        )  # fmt: skip
        summary = _summary(target, spec, recording, info)
        if sys.exc_info()[0] is not None:  # the level broke off: keep what it measured
            write_summary(spec.directory, summary)
    return summary


def _summary(target: Target, spec: LevelSpec, recording: Recording, info: RunInfo) -> RunSummary:
    summary = summarize(recording.aggregator, info)
    for line in lag_lines(summary, target.explained):
        target.events.say(f"warning: {spec.label}: {line}", Tone.WARNING)
    recording.hlog.close()
    return replace(summary, output_errors=recording.lost_writes(target, spec.label))


def lag_lines(summary: RunSummary, explained: set[str]) -> list[str]:
    """A level's client-lag warnings: what a lag means is said once a command (``explained``
    remembers), its figures at every level; a lag that makes the level INVALID is said by its
    verdict alone."""
    client = summary.client
    in_verdict = {"read_lag": client.read_lag_saturated, "send_lag": client.schedule_lag_saturated}
    warnings = [warning for warning in client_lag_warnings(summary) if not in_verdict.get(warning.kind)]
    lines = [warning.brief if warning.kind in explained else warning.text for warning in warnings]
    explained.update(warning.kind for warning in warnings)
    return lines


async def _drive(target: Target, progress: Progress, runner: LoadRunner, monitor: ClientMonitor,
                 watch: ProbeWatch | None) -> StopReason:  # fmt: skip
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(monitor.run())]
    if watch is not None:
        tasks += [asyncio.ensure_future(watch.forward()), asyncio.ensure_future(watch.watch())]
    status = target.events.live(progress) if not target.plan.quiet else contextlib.nullcontext()
    try:
        with status, quiet_garbage_collector():
            outcome = await runner.run()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if watch is not None and watch.reasons and not target.stop.is_set():
        target.events.say(f"{progress.label}: stopped early, {watch.reasons[0]}", Tone.WARNING)
        return StopReason.STOPPED_EARLY
    return outcome.stop_reason


class ProbeWatch:
    """A find-max probe: stopped as soon as it clearly cannot meet the SLOs (or the command stops)."""

    POLL_S = 0.5

    def __init__(self, target: Target, load: LoadConfig, aggregator: Aggregator) -> None:
        self._target, self._aggregator = target, aggregator
        closed = load.mode is LoadMode.CLOSED
        self._minimum = max(8, 2 * load.concurrency) if closed else max(20, round(2 * (load.rate_rps or 0)))
        self.stop = asyncio.Event()
        self.reasons: list[str] = []

    async def forward(self) -> None:
        await self._target.stop.wait()
        self.stop.set()

    async def watch(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(self.POLL_S)
            reason = clearly_over_slo(self._aggregator, self._target.plan.slo, self._minimum)
            if reason is not None:
                self.reasons.append(reason)
                self.stop.set()
                return


def _connections_ahead(load: LoadConfig) -> int:
    """Connections to open before the clock starts: one per user in closed loop; in open loop as
    many as may be in flight, up to ``OPEN_LOOP_CONNECTIONS_AHEAD`` (more open on demand, counted
    as reconnects)."""
    if load.mode is LoadMode.CLOSED:
        return load.concurrency
    return min(load.max_inflight or OPEN_LOOP_CONNECTIONS_AHEAD, OPEN_LOOP_CONNECTIONS_AHEAD)
