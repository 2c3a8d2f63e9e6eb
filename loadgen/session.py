"""Top layer (under the CLI): wires prompts, codec, transport, engine, metrics and report into a
run or a sweep. Owns the output directory, signal handling and the built-in simulator.

Whatever happens (Ctrl-C, SIGTERM, a failing level), every level that ran leaves its
``requests.jsonl``, ``.hlog`` files and ``summary.json`` behind, marked ``partial`` if cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from loadgen.clock import MonotonicClock, wall_time_iso
from loadgen.config import EndpointConfig, GenerationConfig, LoadConfig, LoadMode, SloTarget, TelemetryConfig
from loadgen.engine.limits import check_load_fits, concurrent_requests
from loadgen.engine.model_check import check_triton_model
from loadgen.engine.monitor import ClientMonitor
from loadgen.engine.partition import default_workers
from loadgen.engine.preflight import discover_model, preflight
from loadgen.engine.publisher import Publisher
from loadgen.engine.request import RequestContext, body_limit_bytes
from loadgen.engine.runner import LoadRunner, StopReason, quiet_garbage_collector
from loadgen.errors import ConfigError, OutputError
from loadgen.metrics.aggregate import HISTOGRAM_NAMES, Aggregator
from loadgen.metrics.summary import RunInfo, build_summary, client_lag_warnings
from loadgen.metrics.thresholds import Threshold, outcomes
from loadgen.metrics.validity import level_validity, target_lag
from loadgen.parsing import public_url
from loadgen.prompts import Prompt, PromptPicker
from loadgen.prompts.trace import TraceEntry
from loadgen.protocols import TRITON_APIS, Codec, endpoint_codec
from loadgen.protocols.base import GenerationParams
from loadgen.protocols.triton import parse_triton_options, uses_token_ids
from loadgen.report.console import LiveStatus, level_label, print_run, sweep_table, telemetry_table, triton_line
from loadgen.report.files import HlogWriter, RecordWriter, WriteFailures, prepare_output_dir, write_json
from loadgen.search import MaxLoadSearch, clearly_over_slo
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions
from loadgen.telemetry.prometheus import scrape_counters
from loadgen.telemetry.sidecar import SidecarSampler
from loadgen.telemetry.summary import summarize_window
from loadgen.telemetry.triton import default_metrics_url, levels_by_model, scrape_triton
from loadgen.tokenizer import TokenCounter, load_token_counter
from loadgen.transport.base import Transport
from loadgen.transport.http import HttpTransport

T = TypeVar("T")
EXIT_OK = 0
EXIT_INTERRUPTED = 130
EXIT_THRESHOLDS = 99  # as k6: a --fail-on threshold was breached
EXIT_OUTPUT = 74  # results incomplete: a file could not be written, or a listener failed
EXIT_ERRORS = 3  # a level's requests mostly failed (or none completed): the endpoint refused or died
SIM_MODEL = "sim-llm"
OPEN_LOOP_CONNECTIONS_AHEAD = 256


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a run or sweep needs, resolved from flags and the scenario file."""

    endpoint: EndpointConfig  # with use_simulator, its url is replaced by the simulator's
    generation: GenerationConfig
    levels: tuple[LoadConfig, ...]
    prompts: tuple[Prompt, ...]
    output_dir: Path
    sweep: bool
    use_simulator: bool = False
    slo: tuple[SloTarget, ...] = ()
    tokenizer: str | None = None
    sim_profile: str = "llama2-7b-h100"
    hlog_interval_s: float = 1.0
    secrets: tuple[str, ...] = ()
    quiet: bool = False
    config_record: tuple[tuple[str, object], ...] = ()
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    trace: tuple[TraceEntry, ...] | None = None
    workers: int | None = 1  # None: enough for each level's load (engine.partition.default_workers)
    fail_on: tuple[Any, ...] = ()  # loadgen.metrics.thresholds.Threshold
    max_error_rate: float = 0.05  # a level whose failed share passes this fails the run (EXIT_ERRORS)
    save_text: bool = False
    find_max: MaxLoadSearch | None = None


def stop_on_signals(stop: asyncio.Event) -> None:
    """Ctrl-C and SIGTERM set ``stop`` (not possible on some platforms or outside the main thread)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)


async def until_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None (``work`` cancelled) if ``stop`` is set first: Ctrl-C must not
    wait out a preflight against a server that never answers."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


def redactor(secrets: tuple[str, ...]) -> Callable[[str], str]:
    secrets = tuple(secret for secret in secrets if len(secret) >= 4)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return redact


@contextlib.contextmanager
def _endpoint_for(plan: Plan, console: Console) -> Iterator[EndpointConfig]:
    if not plan.use_simulator:
        yield plan.endpoint
        return
    model = plan.endpoint.model or SIM_MODEL
    console.print(f"No --endpoint given: starting the built-in simulator (profile {plan.sim_profile}).", style="dim")
    with SimProcess(SimSpec(plan.sim_profile, SimOptions(model=model))) as sim:
        console.print(f"Simulator on {sim.url}", style="dim")
        yield replace(plan.endpoint, url=sim.url, model=model)


def execute(plan: Plan, console: Console) -> int:
    """Run the plan; returns the process exit code."""
    check_load_fits(plan.levels, plan.workers or 1)
    prepare_output_dir(plan.output_dir)
    with _endpoint_for(plan, console) as endpoint:
        return _run_loop(_execute_async(plan, endpoint, console))


def _run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


async def _execute_async(plan: Plan, endpoint: EndpointConfig, console: Console) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop)
    token_counter = load_token_counter(plan.tokenizer) if plan.tokenizer else None
    redact = redactor(plan.secrets)
    prepared = await until_stopped(_prepare_endpoint(plan, endpoint, token_counter, redact, console), stop)
    if prepared is None:
        console.print("interrupted during the preflight: no load was sent", style="bold yellow")
        return EXIT_INTERRUPTED
    endpoint = prepared
    lengths = dict(plan.config_record).get("synthetic_input_tokens")
    if isinstance(lengths, dict):
        console.print(f"synthetic prompts: {lengths['min']}–{lengths['max']} input tokens (mean {lengths['mean']:g}), "
                      f"counted by {lengths['counted_by']}", style="dim")  # fmt: skip
    write_json(plan.output_dir / "config.json", _config_json(plan, endpoint))
    summaries: list[dict[str, object]] = []
    triton_metrics = await _triton_metrics_url(plan, endpoint, console)
    lag_url = await target_lag_url(endpoint)
    with _telemetry(plan, endpoint, console) as sidecar:
        for number, load in enumerate(plan.find_max.levels() if plan.find_max else plan.levels, 1):
            level_dir = plan.output_dir / level_directory_name(number, load) if plan.sweep else plan.output_dir
            counter = (
                f"[probe {number}]" if plan.find_max else f"[{number}/{len(plan.levels)}]"
            )  # probes: not known ahead
            label = f"{counter} {load.describe()}" if plan.sweep else load.describe()
            workers = plan.workers or default_workers(load, os.cpu_count() or 1)
            before = await _scrape_triton(triton_metrics)
            lag_before = await scrape_quietly(lag_url)
            if workers > 1:
                summary = await _level_in_workers(
                    dataclasses.replace(plan, workers=workers), endpoint, load, level_dir, label, stop, console, sidecar
                )
            else:
                summary = await _run_level(
                    plan, endpoint, load, level_dir, label, stop, token_counter, redact, console, sidecar
                )
            if triton_metrics is not None:
                await _add_triton_figures(
                    summary, triton_metrics, before, endpoint.model, level_dir, console, plan.sweep
                )
            lag = target_lag(lag_before, await scrape_quietly(lag_url))
            judge_level(summary, lag, plan.max_error_rate, level_dir, label, console, plan.sweep, plan.fail_on)
            if not plan.sweep:
                print_run(console, summary)
            summaries.append(summary)
            if plan.find_max is not None:
                plan.find_max.record(summary)
            if plan.sweep:
                write_json(plan.output_dir / "sweep.json", _sweep_json(plan, endpoint, summaries))
                _print_level_line(console, label, summary)
            if stop.is_set():
                break
    if plan.sweep:
        ordered = sorted(summaries, key=_load_order)
        console.print(sweep_table(ordered, plan.slo))
    if plan.find_max is not None:
        _report_find_max(plan, endpoint, summaries, console)
    if any(summary.get("telemetry") for summary in summaries):
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
    incomplete = [level_label(summary) for summary in summaries
                  if summary.get("output_errors") or summary.get("listener_failures")]  # fmt: skip
    if incomplete:
        console.print(f"results incomplete at {', '.join(incomplete)}: records were lost (see the warnings above and "
                      "output_errors / listener_failures in summary.json)", style="bold red")  # fmt: skip
        return EXIT_OUTPUT
    if plan.fail_on:
        breached = False
        console.print("thresholds (--fail-on):")
        for summary in summaries:
            for outcome in summary.get("thresholds") or []:  # type: ignore[attr-defined]  # the summary is a dict
                mark = "✓" if outcome["passed"] else "✗"
                breached = breached or not outcome["passed"]
                console.print(f"  {mark} {level_label(summary)}: {outcome['line']}",
                              style=None if outcome["passed"] else "red", markup=False)  # fmt: skip
        if breached:
            console.print("thresholds breached", style="bold red")
            return EXIT_THRESHOLDS
    return EXIT_OK


async def target_lag_url(endpoint: EndpointConfig) -> str | None:
    """The target's metrics URL when it reports its own lag (the simulator does); else None."""
    if endpoint.api not in ("openai-chat", "openai-completions", "tgi"):
        return None
    url = endpoint.url.rstrip("/") + "/metrics"
    counters = await scrape_quietly(url)
    return url if counters and "target_modelled_seconds_total" in counters else None


async def scrape_quietly(url: str | None, scrape: Callable[[str], Any] = scrape_counters) -> Any:
    """One scrape of a metrics URL off the event loop; None when there is none or it fails."""
    if url is None:
        return None
    try:
        return await asyncio.to_thread(scrape, url)
    except (OSError, ValueError):
        return None


def judge_level(summary: dict[str, Any], lag: dict[str, Any] | None, max_error_rate: float, level_dir: Path,
                label: str, console: Console, announce: bool = True,
                thresholds: tuple[Threshold, ...] = ()) -> None:  # fmt: skip
    """Adds the target's own lag (``validity.target_lag``), the level's verdict and its threshold
    outcomes to its summary (and rewrites it); an invalid level is said in plain words."""
    if lag is not None:
        summary["target"] = lag
    summary["validity"] = level_validity(summary, max_error_rate)
    if thresholds:
        summary["thresholds"] = outcomes(thresholds, summary)
    write_json(level_dir / "summary.json", summary)
    if announce and not summary["validity"]["valid"]:
        console.print(f"INVALID {label}: {'; '.join(summary['validity']['reasons'])}", style="bold red")


def error_rate_breach(summary: dict[str, Any], limit: float) -> str | None:
    """One line when a level's requests failed beyond ``--max-error-rate``, or none completed."""
    requests = summary["requests"]
    completed, failed, cancelled = requests["completed"], requests["failed"], requests.get("cancelled_at_end", 0)
    label = level_label(summary)
    lost = (summary.get("workers") or {}).get("lost")
    if lost:
        return (f"{label}: worker process {', '.join(lost)} died; its records on disk are merged, the level is "
                "partial")  # fmt: skip
    first = next(iter(requests["first_error_by_kind"].items()), None)
    cause = f"; first error ({first[0]}): {first[1]}" if first else ""
    if completed == 0 and (failed or cancelled):
        return f"{label}: no request completed ({failed} failed, {cancelled} still running at the end){cause}"
    total = completed + failed
    if total and failed / total > limit:
        return (f"{label}: {failed} of {total} requests failed ({100 * failed / total:.1f}%, over --max-error-rate "
                f"{100 * limit:g}%){cause}")  # fmt: skip
    return None


async def prepared_endpoint(plan: Plan, endpoint: EndpointConfig, console: Console) -> EndpointConfig:
    """The endpoint after the preflight request (and model discovery, and Triton's metadata check)."""
    token_counter = load_token_counter(plan.tokenizer) if plan.tokenizer else None
    return await _prepare_endpoint(plan, endpoint, token_counter, redactor(plan.secrets), console)


async def _prepare_endpoint(
    plan: Plan,
    endpoint: EndpointConfig,
    token_counter: TokenCounter | None,
    redact: Callable[[str], str],
    console: Console,
) -> EndpointConfig:
    transport = _transport(endpoint, 2)
    try:
        if endpoint.model is None and endpoint.api.startswith("openai"):
            model = await discover_model(transport, public_url(endpoint.url))
            if model is not None:
                endpoint = replace(endpoint, model=model)
                console.print(f"Model: {model} (the one the server lists)", style="dim")
        if endpoint.api in TRITON_APIS:
            endpoint = await _check_triton(plan, endpoint, transport, console)
        context = _context(plan, endpoint, transport, MonotonicClock(), token_counter, redact)
        await preflight(context, plan.prompts[0], public_url(endpoint.url), endpoint.api)
    finally:
        await transport.close()
    return endpoint


async def _check_triton(plan: Plan, endpoint: EndpointConfig, transport: Transport, console: Console) -> EndpointConfig:
    options = parse_triton_options(endpoint.triton or {})
    if uses_token_ids(options) and plan.tokenizer is None:
        raise ConfigError("the Triton inputs take token ids ($input_ids): give --tokenizer to turn prompts into ids")
    signature = await check_triton_model(transport, endpoint.api, endpoint.model, options, plan.generation.stream,
                                         public_url(endpoint.url))  # fmt: skip
    inputs = ", ".join(f"{name} {info.datatype}{list(info.shape)}" for name, info in signature.inputs.items())
    kind = "decoupled" if signature.decoupled else "one response per request"
    console.print(f"Triton model {signature.name}: {kind}, max_batch_size {signature.max_batch_size}; "
                  f"inputs {inputs}", style="dim")  # fmt: skip
    if endpoint.api == "triton-infer" or not plan.generation.stream:
        console.print("Not streamed: time to first token equals end-to-end latency.", style="dim")
    if plan.tokenizer is None and (not plan.generation.stream or endpoint.api == "triton-infer"):
        console.print("Triton reports no token counts: each answer counts as one token unless its output is token ids; "
                      "give --tokenizer for tokens/s.", style="yellow")  # fmt: skip
    return replace(endpoint, triton_model=signature.to_json())


async def _triton_metrics_url(plan: Plan, endpoint: EndpointConfig, console: Console) -> str | None:
    """Triton's metrics URL when the endpoint is Triton and its metrics answer; else None (with a warning)."""
    if endpoint.api not in TRITON_APIS:
        return None
    url = plan.telemetry.server_metrics_url or default_metrics_url(endpoint.url)
    try:
        await asyncio.to_thread(scrape_triton, url)
    except (OSError, ValueError) as exc:
        console.print(f"Triton metrics not available ({exc}): no server batch size or queue/compute split; "
                      "set --server-metrics", style="yellow")  # fmt: skip
        return None
    console.print(f"Triton metrics from {public_url(url)}", style="dim")
    return url


async def _scrape_triton(url: str | None) -> dict[str, Any] | None:
    return await scrape_quietly(url, scrape_triton)  # type: ignore[no-any-return]


async def _add_triton_figures(summary: dict[str, object], url: str, before: dict[str, Any] | None, model: str | None,
                              level_dir: Path, console: Console, sweep: bool) -> None:  # fmt: skip
    after = await _scrape_triton(url)
    if before is None or after is None:
        return
    models = levels_by_model(before, after)
    summary["server"] = {"source": "triton_metrics", "model": models.get(model or ""), "models": models}
    write_json(level_dir / "summary.json", summary)
    if not sweep:
        console.print(triton_line(summary))


@contextlib.contextmanager
def _telemetry(
    plan: Plan, endpoint: EndpointConfig, console: Console, client_pid: int | None = None
) -> Iterator[SidecarSampler | None]:
    """The sampling sidecar for the whole command, writing ``telemetry.jsonl``; None if not asked for."""
    if not plan.telemetry.enabled:
        yield None
        return
    sidecar = SidecarSampler(plan.telemetry, endpoint.url, plan.output_dir / "telemetry.jsonl", client_pid)
    try:
        for source, reason in sidecar.start().items():
            console.print(f"telemetry: {source} not available: {reason}", style="yellow")
        yield sidecar
    finally:
        sidecar.stop()


def _measured_window(summary: dict[str, Any], origin_ns: int, now_ns: int) -> tuple[int, int]:
    """The level's measured window on the monotonic clock, so telemetry means leave out the idle
    time before the first send and after the last answer (the drain, closing, writing results)."""
    start, end = (summary.get("clock") or {}).get("window_ns") or (None, None)
    if start is None or end is None:
        return origin_ns, now_ns
    return origin_ns + start, origin_ns + end


async def _level_telemetry(
    sidecar: SidecarSampler, start_ns: int, end_ns: int, output_tokens: int, cpu_at_start: float | None
) -> dict[str, object]:
    samples = await asyncio.to_thread(sidecar.window, start_ns, end_ns)
    summary = summarize_window(samples, output_tokens, (end_ns - start_ns) / 1e9)
    sampler = await asyncio.to_thread(sidecar.stats)
    cpu_now = sidecar.cpu_seconds()
    if cpu_now is not None and cpu_at_start is not None and end_ns > start_ns:
        sampler["sidecar_cpu_percent_of_core"] = round(100 * (cpu_now - cpu_at_start) / ((end_ns - start_ns) / 1e9), 3)
    summary["sampler"] = sampler
    return summary


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


def _transport(endpoint: EndpointConfig, max_connections: int) -> Transport:
    if endpoint.api == "triton-grpc":
        from loadgen.transport.grpc import GrpcTransport

        return GrpcTransport(endpoint.url, MonotonicClock(), max_streams=max_connections,
                             headers=dict(endpoint.headers), total_timeout_s=endpoint.total_timeout_s,
                             first_response_timeout_s=endpoint.first_token_timeout_s)  # fmt: skip
    http = HttpTransport(
        endpoint.url,
        MonotonicClock(),
        max_connections=max_connections,
        headers=dict(endpoint.headers),
        connect_timeout_s=endpoint.connect_timeout_s,
        read_timeout_s=endpoint.first_token_timeout_s,
        total_timeout_s=endpoint.total_timeout_s,
        verify_tls=endpoint.verify_tls,
    )
    if endpoint.api != "sagemaker":
        return http
    from loadgen.transport.sigv4 import SigV4Transport, default_credentials

    return SigV4Transport(http, endpoint.url, default_credentials(endpoint.aws_profile), endpoint.region or "")


def _connections_ahead(load: LoadConfig) -> int:
    """Connections to open before the clock starts: one per user in closed loop; in open loop as
    many as may be in flight, up to ``OPEN_LOOP_CONNECTIONS_AHEAD`` (more open on demand, counted
    as reconnects)."""
    if load.mode is LoadMode.CLOSED:
        return load.concurrency
    return min(load.max_inflight or OPEN_LOOP_CONNECTIONS_AHEAD, OPEN_LOOP_CONNECTIONS_AHEAD)


def _codec(endpoint: EndpointConfig, token_counter: TokenCounter | None = None) -> Codec:
    return endpoint_codec(endpoint, token_counter.encode if token_counter is not None else None)


def _context(
    plan: Plan,
    endpoint: EndpointConfig,
    transport: Transport,
    clock: MonotonicClock,
    token_counter: TokenCounter | None,
    redact: Callable[[str], str],
    run_start_ns: int = 0,
    concurrency: int = 1,
) -> RequestContext:
    return RequestContext(
        codec=_codec(endpoint, token_counter),
        params=GenerationParams(endpoint.model, plan.generation),
        transport=transport,
        clock=clock,
        run_start_ns=run_start_ns,
        first_token_timeout_s=endpoint.first_token_timeout_s,
        token_counter=token_counter,
        redact=redact,
        save_text=plan.save_text,
        max_whole_body_bytes=body_limit_bytes(concurrency),
    )


async def _run_level(
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
) -> dict[str, object]:
    """One level in this process. ``run_start_ns``: a time origin shared with other worker
    processes; ``on_aggregator``: called with the live aggregator (worker progress and state)."""
    level_dir.mkdir(parents=True, exist_ok=True)
    clock = MonotonicClock()
    connections = load.concurrency if load.mode is LoadMode.CLOSED else (load.max_inflight or 10_000)
    transport = _transport(endpoint, max(1, connections))
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
    context = _context(
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
            start_ns, end_ns = _measured_window(summary, run_start_ns, clock.now_ns())
            summary["telemetry"] = await _level_telemetry(sidecar, start_ns, end_ns, aggregator.output_tokens,
                                                          sidecar_cpu)  # fmt: skip
        hlog.close()
        _warn_about_losses(console, label, publisher, write_failures, summary)
        try:
            write_json(level_dir / "summary.json", summary)
        except OutputError:
            print_run(console, summary)  # the figures on the screen are all that is left of this level
            raise
    return summary


def _warn_about_losses(console: Console, label: str, publisher: Publisher, failures: WriteFailures,
                       summary: dict[str, object]) -> None:  # fmt: skip
    """A listener that failed, or a result file that could not be written, is said in the console
    and recorded in the summary: never a clean-looking run with records missing."""
    for name, message in publisher.first_failure.items():
        console.print(f"warning: {label}: {publisher.failures[name]} records failed in {name}: {message}",
                      style="bold yellow")  # fmt: skip
    lost = failures.to_json()
    if lost:
        summary["output_errors"] = lost
        for name, message in failures.first.items():
            console.print(f"warning: {label}: cannot write {name} ({message}): {failures.lost[name]} writes lost; "
                          "the summary still has every figure", style="bold red")  # fmt: skip


async def _level_in_workers(
    plan: Plan, endpoint: EndpointConfig, load: LoadConfig, level_dir: Path, label: str, stop: asyncio.Event,
    console: Console, sidecar: SidecarSampler | None,
) -> dict[str, object]:  # fmt: skip
    from loadgen.workers import run_level_in_workers

    if sidecar is not None:
        await asyncio.to_thread(sidecar.sample_now)
    cpu_at_start = sidecar.cpu_seconds() if sidecar is not None else None
    summary = await run_level_in_workers(plan, endpoint, load, level_dir, label, stop, console)
    if sidecar is not None:
        await asyncio.to_thread(sidecar.sample_now)
        origin_ns = int(summary["clock"]["monotonic_start_ns"])  # type: ignore[index, call-overload]
        tokens = int(summary["tokens"]["output_total"])  # type: ignore[index, call-overload]
        start_ns, end_ns = _measured_window(summary, origin_ns, MonotonicClock.now_ns())
        summary["telemetry"] = await _level_telemetry(sidecar, start_ns, end_ns, tokens, cpu_at_start)
        write_json(level_dir / "summary.json", summary)
    return summary


def _load_order(summary: dict[str, Any]) -> tuple[float, float, int]:
    load = summary["load"]
    return (load["concurrency"] or 0, load["rate"] or 0, load.get("batch_size") or 1)


def _report_find_max(
    plan: Plan, endpoint: EndpointConfig, summaries: list[dict[str, object]], console: Console
) -> None:
    search = plan.find_max
    assert search is not None
    unit = "users" if plan.levels[0].mode is LoadMode.CLOSED else "req/s"
    if search.passed is None:
        console.print("find-max: even the first level broke the SLOs", style="bold red")
    elif search.failed is None:
        console.print(f"find-max: every level up to {search.passed:g} {unit} met the SLOs (raise the range's end)")
    else:
        console.print(f"find-max: {search.passed:g} {unit} is the highest load meeting the SLOs "
                      f"({search.failed:g} {unit} broke them)", style="bold green")  # fmt: skip
    sweep = _sweep_json(plan, endpoint, summaries)
    sweep["find_max"] = {"passed": search.passed, "failed": search.failed, "unit": unit}
    write_json(plan.output_dir / "sweep.json", sweep)


def level_directory_name(number: int, load: LoadConfig) -> str:
    """``level-01-c16``: a sweep's and a comparison's level directories are named alike."""
    return f"level-{number:02d}-{_level_name(load)}"


def _level_name(load: LoadConfig) -> str:
    if load.trace_file or load.stages:
        return "schedule"
    name = f"c{load.concurrency}" if load.mode is LoadMode.CLOSED else f"r{load.rate_rps:g}"
    return name + (f"-b{load.batch_size}" if load.batch_size > 1 else "")


def _print_level_line(console: Console, label: str, summary: dict) -> None:  # type: ignore[type-arg]
    latency, throughput = summary["latency_ms"], summary["throughput"]

    def fmt(value: object) -> str:
        return "–" if value is None else f"{value:.1f}"

    console.print(
        f"{label}: {summary['requests']['completed']} ok, {summary['requests']['failed']} failed · "
        f"TTFT p50 {fmt(latency['ttft']['p50'])} ms · TPOT p50 {fmt(latency['tpot']['p50'])} ms · "
        f"{fmt(throughput['output_tokens_per_s'])} output tok/s"
    )


def _config_json(plan: Plan, endpoint: EndpointConfig) -> dict[str, object]:
    return {
        "endpoint": public_url(endpoint.url),
        "api": endpoint.api,
        "model": endpoint.model,
        "simulator_profile": plan.sim_profile if plan.use_simulator else None,
        "header_names": [name for name, _ in endpoint.headers],
        "options": {key: _jsonable(value) for key, value in plan.config_record},
    }


def _sweep_json(plan: Plan, endpoint: EndpointConfig, summaries: list[dict[str, object]]) -> dict[str, object]:
    from loadgen.metrics.summary import SCHEMA_VERSION

    return {"schema_version": SCHEMA_VERSION, "config": _config_json(plan, endpoint), "levels": summaries}


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


def check_plan(plan: Plan) -> None:
    if not plan.levels:
        raise ConfigError("nothing to run: give --concurrency or --rate")
