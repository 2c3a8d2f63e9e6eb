"""Run tier: a run or sweep, level after level; its files, verdicts and exit code."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from msgspec.structs import replace
from rich.console import Console

from loadgen.clock import MonotonicClock
from loadgen.config import EndpointConfig, LoadConfig, LoadMode
from loadgen.engine.limits import check_load_fits
from loadgen.engine.partition import default_workers
from loadgen.eventloop import run_loop
from loadgen.metrics.results import FindMaxOutcome, RunConfig, RunSummary, SweepResult, TargetLag
from loadgen.metrics.thresholds import Threshold, outcomes
from loadgen.metrics.validity import level_validity, target_lag
from loadgen.parsing import public_url
from loadgen.redact import redactor
from loadgen.report.console import level_label, print_run, sweep_table, telemetry_table
from loadgen.report.files import prepare_output_dir, write_json
from loadgen.run.endpoint import (
    add_triton_figures,
    endpoint_for,
    prepare_endpoint,
    scrape_quietly,
    scrape_triton_quietly,
    target_lag_url,
    telemetry_sidecar,
    triton_metrics_url,
)
from loadgen.run.find_max import MaxLoadSearch
from loadgen.run.level import level_directory_name, level_telemetry, measured_window, run_level, write_level_summary
from loadgen.run.loop import stop_on_signals, until_stopped
from loadgen.run.workers import run_level_in_workers
from loadgen.scenario.plan import Plan
from loadgen.telemetry.sidecar import SidecarSampler
from loadgen.tokenizer import load_token_counter

EXIT_OK = 0


EXIT_INTERRUPTED = 130


EXIT_THRESHOLDS = 99  # as k6: a --fail-on threshold was breached


EXIT_OUTPUT = 74  # results incomplete: a file could not be written, or a listener failed


EXIT_ERRORS = 3  # a level's requests mostly failed (or none completed): the endpoint refused or died


@dataclass(frozen=True)
class RunResult:
    """What ``run`` did: the exit code ``loadgen run``/``sweep`` would give, and each level's
    summary as written to its ``summary.json`` (in the order run)."""

    exit_code: int
    summaries: tuple[RunSummary, ...]
    output_dir: Path


def run(plan: Plan, console: Console | None = None) -> RunResult:
    """Runs a plan: one level, a sweep, or a find-max search, with its result files written as
    ``loadgen run`` and ``loadgen sweep`` write them. ``console`` None: nothing is printed."""
    console = console if console is not None else Console(quiet=True)
    check_load_fits(plan.levels, plan.workers or 1)
    prepare_output_dir(plan.output_dir)
    summaries: list[RunSummary] = []
    with endpoint_for(plan, console) as endpoint:
        code = run_loop(_execute_async(plan, endpoint, console, summaries))
    return RunResult(code, tuple(summaries), plan.output_dir)


def execute(plan: Plan, console: Console) -> int:
    """Runs the plan; returns the process exit code."""
    return run(plan, console).exit_code


async def _execute_async(plan: Plan, endpoint: EndpointConfig, console: Console,
                         summaries: list[RunSummary]) -> int:  # fmt: skip
    stop = asyncio.Event()
    stop_on_signals(stop)
    token_counter = load_token_counter(plan.tokenizer) if plan.tokenizer else None
    redact = redactor(plan.secrets)
    prepared = await until_stopped(prepare_endpoint(plan, endpoint, token_counter, redact, console), stop)
    if prepared is None:
        console.print("interrupted during the preflight: no load was sent", style="bold yellow")
        return EXIT_INTERRUPTED
    endpoint = prepared
    lengths = dict(plan.config_record).get("synthetic_input_tokens")
    if isinstance(lengths, dict):
        console.print(f"synthetic prompts: {lengths['min']}–{lengths['max']} input tokens (mean {lengths['mean']:g}), "
                      f"counted by {lengths['counted_by']}", style="dim")  # fmt: skip
    write_json(plan.output_dir / "config.json", config_json(plan, endpoint).to_json())
    search = (
        MaxLoadSearch(plan.find_max.template, plan.find_max.start, plan.find_max.ceiling, plan.slo)
        if plan.find_max
        else None
    )
    triton_metrics = await triton_metrics_url(plan, endpoint, console)
    lag_url = await target_lag_url(endpoint)
    with telemetry_sidecar(plan, endpoint, console) as sidecar:
        for number, load in enumerate(search.levels() if search is not None else plan.levels, 1):
            level_dir = plan.output_dir / level_directory_name(number, load) if plan.sweep else plan.output_dir
            counter = (
                f"[probe {number}]" if plan.find_max else f"[{number}/{len(plan.levels)}]"
            )  # probes: not known ahead
            label = f"{counter} {load.describe()}" if plan.sweep else load.describe()
            workers = plan.workers or default_workers(load, os.cpu_count() or 1)
            before = await scrape_triton_quietly(triton_metrics)
            lag_before = await scrape_quietly(lag_url)
            if workers > 1:
                summary = await _level_in_workers(
                    dataclasses.replace(plan, workers=workers), endpoint, load, level_dir, label, stop, console, sidecar
                )
            else:
                summary = await run_level(
                    plan, endpoint, load, level_dir, label, stop, token_counter, redact, console, sidecar
                )
            try:
                if triton_metrics is not None:
                    summary = await add_triton_figures(
                        summary, triton_metrics, before, endpoint.model, level_dir, console, plan.sweep
                    )
                lag = target_lag(lag_before, await scrape_quietly(lag_url))
                summary = judge_level(summary, lag, plan.max_error_rate, label, console, plan.sweep, plan.fail_on)
            finally:
                write_level_summary(level_dir, summary, console)
            if not plan.sweep:
                print_run(console, summary)
            summaries.append(summary)
            if search is not None:
                search.record(summary)
            if plan.sweep:
                write_json(plan.output_dir / "sweep.json", sweep_json(plan, endpoint, summaries).to_json())
                _print_level_line(console, label, summary)
            if stop.is_set():
                break
    if plan.sweep:
        ordered = sorted(summaries, key=_load_order)
        console.print(sweep_table(ordered, plan.slo))
    if search is not None:
        _report_find_max(plan, search, endpoint, summaries, console)
    if any(summary.telemetry for summary in summaries):
        console.print(telemetry_table(summaries))
    console.print(f"Results in {plan.output_dir}", style="dim")
    if stop.is_set():
        console.print("Interrupted: results so far were written and marked partial.", style="bold yellow")
        return EXIT_INTERRUPTED
    failing = [line for summary in summaries if (line := error_rate_breach(summary, plan.max_error_rate))]
    if failing:
        for line in failing:
            console.print(line, style="bold red")
        return EXIT_ERRORS
    incomplete = [level_label(summary) for summary in summaries if summary.records_lost]
    if incomplete:
        console.print(f"results incomplete at {', '.join(incomplete)}: records were lost (see the warnings above and "
                      "output_errors / listener_failures in summary.json)", style="bold red")  # fmt: skip
        return EXIT_OUTPUT
    if plan.fail_on:
        breached = False
        console.print("thresholds (--fail-on):")
        for summary in summaries:
            for outcome in summary.thresholds or ():
                mark = "✓" if outcome.passed else "✗"
                breached = breached or not outcome.passed
                console.print(f"  {mark} {level_label(summary)}: {outcome.line}",
                              style=None if outcome.passed else "red", markup=False)  # fmt: skip
        if breached:
            console.print("thresholds breached", style="bold red")
            return EXIT_THRESHOLDS
    return EXIT_OK


def judge_level(summary: RunSummary, lag: TargetLag | None, max_error_rate: float, label: str, console: Console,
                announce: bool = True, thresholds: tuple[Threshold, ...] = ()) -> RunSummary:  # fmt: skip
    """The summary with the target's own lag (``validity.target_lag``), the level's verdict and its
    threshold outcomes; an invalid level is said in plain words."""
    summary = replace(summary, target=lag if lag is not None else summary.target)
    validity = level_validity(summary, max_error_rate)
    summary = replace(summary, validity=validity, thresholds=outcomes(thresholds, summary) if thresholds else None)
    if announce and not validity.valid:
        console.print(f"INVALID {label}: {'; '.join(validity.reasons)}", style="bold red")
    return summary


def error_rate_breach(summary: RunSummary, limit: float) -> str | None:
    """One line when a level's requests failed beyond ``--max-error-rate``, or none completed."""
    completed, failed, cancelled = summary.completed, summary.failed, summary.requests.cancelled_at_end
    label = level_label(summary)
    lost = summary.lost_workers
    if lost:
        return (f"{label}: worker process {', '.join(lost)} died; its records on disk are merged, the level is "
                "partial")  # fmt: skip
    first = next(iter(summary.requests.first_error_by_kind.items()), None)
    cause = f"; first error ({first[0]}): {first[1]}" if first else ""
    if completed == 0 and (failed or cancelled):
        return f"{label}: no request completed ({failed} failed, {cancelled} still running at the end){cause}"
    total = completed + failed
    if total and failed / total > limit:
        return (f"{label}: {failed} of {total} requests failed ({100 * failed / total:.1f}%, over --max-error-rate "
                f"{100 * limit:g}%){cause}")  # fmt: skip
    return None


async def _level_in_workers(
    plan: Plan, endpoint: EndpointConfig, load: LoadConfig, level_dir: Path, label: str, stop: asyncio.Event,
    console: Console, sidecar: SidecarSampler | None,
) -> RunSummary:  # fmt: skip

    if sidecar is not None:
        await asyncio.to_thread(sidecar.sample_now)
    cpu_at_start = sidecar.cpu_seconds() if sidecar is not None else None
    summary = await run_level_in_workers(plan, endpoint, load, level_dir, label, stop, console)
    if sidecar is not None:
        await asyncio.to_thread(sidecar.sample_now)
        origin_ns = summary.clock.monotonic_start_ns if summary.clock else 0
        start_ns, end_ns = measured_window(summary, origin_ns, MonotonicClock.now_ns())
        telemetry = await level_telemetry(sidecar, start_ns, end_ns, summary.tokens.output_total or 0, cpu_at_start)
        summary = replace(summary, telemetry=telemetry)
    return summary


def _load_order(summary: RunSummary) -> tuple[float, float, int]:
    load = summary.load
    return (load.concurrency or 0, load.rate or 0, load.batch_size)


def _report_find_max(plan: Plan, search: MaxLoadSearch, endpoint: EndpointConfig, summaries: list[RunSummary],
                     console: Console) -> None:  # fmt: skip
    unit = "users" if plan.levels[0].mode is LoadMode.CLOSED else "req/s"
    if search.passed is None:
        console.print("find-max: even the first level broke the SLOs", style="bold red")
    elif search.failed is None:
        console.print(f"find-max: every level up to {search.passed:g} {unit} met the SLOs (raise the range's end)")
    else:
        console.print(f"find-max: {search.passed:g} {unit} is the highest load meeting the SLOs "
                      f"({search.failed:g} {unit} broke them)", style="bold green")  # fmt: skip
    sweep = sweep_json(plan, endpoint, summaries)
    sweep = replace(sweep, find_max=FindMaxOutcome(passed=search.passed, failed=search.failed, unit=unit))
    write_json(plan.output_dir / "sweep.json", sweep.to_json())


def _print_level_line(console: Console, label: str, summary: RunSummary) -> None:
    latency, throughput = summary.latency_ms, summary.throughput

    def fmt(value: float | None) -> str:
        return "–" if value is None else f"{value:.1f}"

    console.print(
        f"{label}: {summary.completed} ok, {summary.failed} failed · "
        f"TTFT p50 {fmt(latency.ttft.p50)} ms · TPOT p50 {fmt(latency.tpot.p50)} ms · "
        f"{fmt(throughput.output_tokens_per_s)} output tok/s"
    )


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
    return SweepResult(config=config_json(plan, endpoint), levels=tuple(summaries))


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
