"""Run tier: a run or sweep, level after level; its files, verdicts and exit code."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from msgspec.structs import replace

from loadgen.config import EndpointConfig, LoadConfig, LoadMode
from loadgen.engine.limits import check_load_fits
from loadgen.engine.partition import default_workers
from loadgen.eventloop import run_loop
from loadgen.metrics.results import FindMaxOutcome, RunConfig, RunSummary, SweepResult
from loadgen.metrics.server_account import breakdown_growth
from loadgen.parsing import public_url
from loadgen.report.files import prepare_output_dir, write_json
from loadgen.run.collect import LevelSpec
from loadgen.run.events import Finished, RunEvents, SilentEvents, Tone
from loadgen.run.find_max import MaxLoadSearch
from loadgen.run.level import level_directory_name, measure_level
from loadgen.run.loop import stop_on_signals
from loadgen.run.outcome import ExitCode, decide
from loadgen.run.target import prepared_unless_stopped, simulated_or_given, span_receiver, telemetry_sidecar
from loadgen.scenario.plan import Plan
from loadgen.telemetry.otlp import SpanReceiver


@dataclass(frozen=True)
class RunResult:
    """What ``run`` did: the exit code ``loadgen run``/``sweep`` would give, and each level's
    summary as written to its ``summary.json`` (in the order run)."""

    exit_code: int
    summaries: tuple[RunSummary, ...]
    output_dir: Path


def run(plan: Plan, events: RunEvents | None = None) -> RunResult:
    """Runs a plan: one level, a sweep, or a find-max search, with its result files written as
    ``loadgen run`` and ``loadgen sweep`` write them. ``events`` None: nothing is said."""
    events = events if events is not None else SilentEvents()
    check_load_fits(plan.levels, plan.workers or 1)
    with (prepare_output_dir(plan.output_dir), span_receiver(plan, events) as spans,
          simulated_or_given(plan, events, spans) as endpoint):  # fmt: skip
        return run_loop(_run_levels(plan, endpoint, events, spans))


async def _run_levels(plan: Plan, endpoint: EndpointConfig, events: RunEvents, spans: SpanReceiver | None) -> RunResult:
    stop = asyncio.Event()
    stop_on_signals(stop)
    target = await prepared_unless_stopped(plan, endpoint, events, stop, spans=spans)
    if target is None:
        return RunResult(ExitCode.INTERRUPTED, (), plan.output_dir)
    lengths = dict(plan.config_record).get("synthetic_input_tokens")
    if isinstance(lengths, dict):
        events.say(f"synthetic prompts: {lengths['min']}–{lengths['max']} input tokens (mean {lengths['mean']:g}), "
                   f"counted by {lengths['counted_by']}", Tone.NOTE)  # fmt: skip
    write_json(plan.output_dir / "config.json", config_json(plan, target.endpoint).to_json())
    search = MaxLoadSearch(plan.find_max.template, plan.find_max.start, plan.find_max.ceiling,
                           plan.slo) if plan.find_max else None  # fmt: skip
    summaries: list[RunSummary] = []
    with telemetry_sidecar(plan, target.endpoint.url, events) as sidecar:
        target = dataclasses.replace(target, sidecar=sidecar)
        for number, load in enumerate(search.levels() if search is not None else plan.levels, 1):
            summary = (await measure_level(target, _level_spec(plan, number, load))).summary
            summaries.append(summary)
            if search is not None:
                search.record(summary)
            if plan.sweep:
                write_json(plan.output_dir / "sweep.json", sweep_json(plan, target.endpoint, summaries).to_json())
            if stop.is_set():
                break
    found = _find_max_outcome(plan, search, target.endpoint, summaries) if search is not None else None
    outcome = decide(summaries, interrupted=stop.is_set())
    growth = sweep_json(plan, target.endpoint, summaries).ttft_growth if plan.sweep else ()
    events.finished(Finished(tuple(summaries), outcome, plan.output_dir, plan.slo, plan.sweep, found,
                             thresholds_asked=bool(plan.fail_on), ttft_growth=growth))  # fmt: skip
    return RunResult(outcome.code, tuple(summaries), plan.output_dir)


def _level_spec(plan: Plan, number: int, load: LoadConfig) -> LevelSpec:
    directory = plan.output_dir / level_directory_name(number, load) if plan.sweep else plan.output_dir
    counter = f"[probe {number}]" if plan.find_max else f"[{number}/{len(plan.levels)}]"  # probes: not known ahead
    label = f"{counter} {load.describe()}" if plan.sweep else load.describe()
    return LevelSpec(load, directory, label, plan.workers or default_workers(load, os.cpu_count() or 1))


def _find_max_outcome(plan: Plan, search: MaxLoadSearch, endpoint: EndpointConfig,
                      summaries: list[RunSummary]) -> FindMaxOutcome:  # fmt: skip
    unit = "users" if plan.levels[0].mode is LoadMode.CLOSED else "req/s"
    found = FindMaxOutcome(passed=search.passed, failed=search.failed, unit=unit)
    write_json(plan.output_dir / "sweep.json", replace(sweep_json(plan, endpoint, summaries), find_max=found).to_json())
    return found


def config_json(plan: Plan, endpoint: EndpointConfig) -> RunConfig:
    return RunConfig(
        endpoint=public_url(endpoint.url),
        api=endpoint.api,
        model=endpoint.model,
        simulator_profile=plan.sim_profile if plan.use_simulator else None,
        header_names=tuple(name for name, _ in endpoint.headers),
        options={key: _jsonable(value) for key, value in plan.config_record},
    )


def sweep_json(plan: Plan, endpoint: EndpointConfig, summaries: list[RunSummary]) -> SweepResult:
    growth = breakdown_growth([(summary.label, summary.server_timings) for summary in summaries])
    return SweepResult(config=config_json(plan, endpoint), levels=tuple(summaries), ttft_growth=growth)


def _jsonable(value: object) -> object:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)
