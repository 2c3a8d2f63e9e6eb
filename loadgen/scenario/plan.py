"""Scenario tier: the plan of a run, sweep or comparison, resolved from flags and a scenario file."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.config import Arrival, EndpointConfig, GenerationConfig, LoadConfig, LoadMode, SloTarget, TelemetryConfig
from loadgen.errors import ConfigError
from loadgen.extras import require
from loadgen.parsing import request_secrets
from loadgen.prompts import Prompt
from loadgen.prompts.loaders import load_prompts
from loadgen.prompts.sessions import SessionLoad, session_load
from loadgen.prompts.synthetic import achieved_lengths, parse_synthetic, synthesize
from loadgen.prompts.trace import TraceEntry, load_trace
from loadgen.protocols.apis import BATCH_APIS, TransportKind, api_spec
from loadgen.scenario.options import OPTIONS_BY_NAME, Settings, convert, load_scenario, resolve
from loadgen.tokenizer import load_token_counter


@dataclass(frozen=True, slots=True)
class FindMax:
    """``--find-max``: from ``start`` up to ``ceiling`` (users, or req/s), the highest load whose
    levels (shaped like ``template``) meet the plan's SLOs (``loadgen.run.find_max`` searches)."""

    template: LoadConfig
    start: float
    ceiling: float


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
    sim_prefix_cache: bool = False
    sim_reasoning_tokens: int = 0
    hlog_interval_s: float = 1.0
    secrets: tuple[str, ...] = ()
    quiet: bool = False
    config_record: tuple[tuple[str, object], ...] = ()
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    trace: tuple[TraceEntry, ...] | None = None
    sessions: SessionLoad | None = None  # multi-turn sessions instead of single prompts
    session_header: str | None = None
    workers: int | None = 1  # None: enough for each level's load (engine.partition.default_workers)
    fail_on: tuple[Any, ...] = ()  # loadgen.metrics.thresholds.Threshold
    max_error_rate: float = 0.05  # a level whose failed share passes this fails the run (ExitCode.ERRORS)
    save_text: bool = False
    find_max: FindMax | None = None  # --find-max: search for the highest load that meets the SLOs
    server_timings: str = "auto"  # auto | otlp | off: the server's own account of each request
    otlp_listen: tuple[str, int] | None = None  # the OTLP/HTTP receiver's address (None: the default)
    otlp_grpc_listen: tuple[str, int] | None = None  # and an OTLP/gRPC one's, when asked for
    otlp_wait_s: float = 10.0  # after a level, the longest wait for its spans


def aws_secrets(profile: str | None) -> list[str]:
    """The access key id, secret key and session token botocore will sign with: a 401 that echoes
    the request's headers must not show them."""
    from botocore.session import Session

    credentials = Session(profile=profile).get_credentials() if profile else Session().get_credentials()
    if credentials is None:
        return []
    frozen = credentials.get_frozen_credentials()
    return [value for value in (frozen.access_key, frozen.secret_key, frozen.token) if value]


def plan_from_flags(flags: Mapping[str, object], scenario_path: str | None = None, sweep: bool = False) -> Plan:
    """The plan of a command: ``flags`` (option name -> the value as typed or given, e.g.
    ``{"endpoint": URL, "concurrency": "16"}``) over the scenario file's settings over the defaults.
    Raises ``ConfigError`` naming the flag, file or field that is wrong."""
    scenario = load_scenario(scenario_path) if scenario_path else {}
    converted = {
        name: convert(OPTIONS_BY_NAME[name], raw, "--" + name.replace("_", "-")) for name, raw in flags.items()
    }
    settings = resolve(converted, scenario)
    levels = _levels(settings, sweep)
    headers = list(settings.header)
    key = None
    if settings.api_key_env:
        key = os.environ.get(settings.api_key_env)
        if not key:
            raise ConfigError(f"--api-key-env {settings.api_key_env}: environment variable is not set")
    secrets = request_secrets([value for _, value in headers],
                              (settings.endpoint, settings.endpoint_url, settings.telemetry_url), key)  # fmt: skip
    if key:
        headers.append(("Authorization", f"Bearer {key}"))
    url = settings.endpoint
    region = settings.region
    spec = api_spec(settings.api)
    if spec.extra is not None:
        require(spec.extra, f"--api {spec.name}")
    if settings.tokenizer and not settings.tokenizer.startswith("tiktoken:"):
        require("tokenizers", "--tokenizer")
    if "gpu" in (settings.telemetry or ()):
        require("gpu", "--telemetry gpu")
    if spec.transport is TransportKind.SIGV4_HTTP:
        if not settings.endpoint_name:
            raise ConfigError("--api sagemaker: give --endpoint-name (the SageMaker endpoint to invoke)")
        if region is None:
            from botocore.session import Session

            region = Session(profile=settings.aws_profile).get_config_variable("region")
        if region is None and settings.endpoint_url is None:
            raise ConfigError("--api sagemaker: give --region (or set one in the AWS config)")
        url = settings.endpoint_url or f"https://runtime.sagemaker.{region}.amazonaws.com"
        secrets += aws_secrets(settings.aws_profile)
    triton = None
    if spec.triton:
        if url is None:
            raise ConfigError(f"--api {settings.api}: give --endpoint (the built-in simulator speaks OpenAI and TGI)")
        triton = {**(settings.triton or {})}
        if settings.model_version:
            triton["model_version"] = settings.model_version
    if spec.transport is TransportKind.GRPC and url is not None:
        from loadgen.transport.grpc import grpc_target

        grpc_target(url)
    elif url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"--endpoint {url}: expected an http:// or https:// URL")
    endpoint = EndpointConfig(
        url=url or "",
        api=settings.api,
        model=settings.model,
        headers=tuple(headers),
        api_key_env=settings.api_key_env,
        connect_timeout_s=settings.connect_timeout,
        first_token_timeout_s=settings.first_token_timeout,
        total_timeout_s=settings.request_timeout,
        verify_tls=not settings.insecure,
        schema=settings.schema,
        sagemaker_endpoint=settings.endpoint_name,
        region=region or "us-east-1",
        inference_component=settings.inference_component,
        custom_attributes=settings.custom_attributes,
        target_variant=settings.target_variant,
        aws_profile=settings.aws_profile,
        triton=triton,
    )
    generation = GenerationConfig(
        max_tokens=settings.max_tokens,
        ignore_eos=settings.ignore_eos,
        temperature=settings.temperature,
        stream=not settings.no_stream,
        extra_body=tuple((settings.extra_body or {}).items()),
    )
    trace = (load_trace(settings.trace, settings.trace_speed, settings.seed, settings.trace_format)
             if settings.trace else None)  # fmt: skip
    lengths = None
    sessions = (session_load(settings.sessions, settings.history, settings.think_time, settings.seed)
                if settings.sessions else None)  # fmt: skip
    if sessions is not None and (settings.trace or settings.synthetic):
        raise ConfigError("--sessions bring their own prompts: no --trace or --synthetic with them")
    if settings.session_header and sessions is None:
        raise ConfigError("--session-header sends a session's id: give --sessions")
    for flag, given in (("--otlp-listen", settings.otlp_listen), ("--otlp-grpc-listen", settings.otlp_grpc_listen)):
        if given is not None and settings.server_timings != "otlp":
            raise ConfigError(f"{flag} is where OTLP spans are received: give --server-timings otlp "
                              f"(it is {settings.server_timings})")  # fmt: skip
    if settings.otlp_grpc_listen is not None:
        require("otlp-grpc", "--otlp-grpc-listen")
    if sessions is not None:
        prompts = [sessions.sessions[0].prompt(0, (), "preflight")]  # the preflight's prompt: a first turn
    elif settings.synthetic:
        counter = load_token_counter(settings.tokenizer) if settings.tokenizer else None
        prompts = synthesize(parse_synthetic(settings.synthetic), settings.seed, counter)
        lengths = achieved_lengths(prompts, counter)
    elif trace is not None:
        prompts = [entry.prompt for entry in trace[:1]]  # the preflight's prompt
    else:
        prompts = load_prompts(settings.prompts)
    output = settings.output or os.path.join("results", time.strftime("%Y%m%d-%H%M%S"))
    return Plan(
        endpoint=endpoint,
        generation=generation,
        levels=tuple(levels),
        prompts=tuple(prompts),
        output_dir=Path(output),
        sweep=sweep,
        use_simulator=url is None,
        slo=settings.slo,
        tokenizer=settings.tokenizer,
        sim_profile=settings.sim_profile,
        sim_prefix_cache=settings.sim_prefix_cache,
        sim_reasoning_tokens=settings.sim_reasoning_tokens,
        hlog_interval_s=settings.hlog_interval,
        secrets=tuple(secrets),
        quiet=settings.quiet,
        config_record=tuple(settings.recorded().items()) + ((("synthetic_input_tokens", lengths),) if lengths else ()),
        trace=tuple(trace) if trace is not None else None,
        sessions=sessions,
        session_header=settings.session_header,
        workers=settings.workers,
        fail_on=settings.fail_on,
        max_error_rate=settings.max_error_rate,
        save_text=settings.save_text,
        find_max=_search(settings, levels) if settings.find_max else None,
        server_timings=settings.server_timings,
        otlp_listen=settings.otlp_listen,
        otlp_grpc_listen=settings.otlp_grpc_listen,
        otlp_wait_s=settings.otlp_wait,
        telemetry=TelemetryConfig(
            sources=settings.telemetry,
            interval_s=settings.telemetry_interval,
            remote_url=settings.telemetry_url,
            server_metrics_url=settings.server_metrics,
            server_metric_names=settings.server_metric,
            gpu_devices=settings.gpu_devices,
        ),
    )


def _search(settings: Settings, levels: list[LoadConfig]) -> FindMax:
    if not [t for t in settings.slo if not t.per_request]:
        raise ConfigError("--find-max needs percentile (or mean) SLOs, e.g. --slo ttft_p99=500ms,tpot_p99=50ms")
    first = levels[0]
    values = [level.concurrency if first.mode is LoadMode.CLOSED else level.rate_rps or 0.0 for level in levels]
    start, ceiling = min(values), max(values)
    if ceiling == start:
        ceiling = start * 1024
    return FindMax(first, start, ceiling)


def _single_schedule(settings: Settings) -> LoadConfig | None:
    """A trace or stages: one level whose schedule is given, not swept."""
    common: dict[str, Any] = {
        "arrival": Arrival(settings.arrival), "burstiness": settings.burstiness, "seed": settings.seed,
        "max_inflight": settings.max_inflight, "drain_timeout_s": settings.drain_timeout,
    }  # fmt: skip
    if settings.trace:
        if settings.stages or settings.concurrency or settings.rate:
            raise ConfigError("--trace brings its own schedule: no --stages, --concurrency or --rate with it")
        return LoadConfig(
            mode=LoadMode.OPEN,
            requests=settings.requests,
            duration_s=settings.duration,
            trace_file=settings.trace,
            trace_speed=settings.trace_speed,
            trace_format=settings.trace_format,
            **common,
        )
    if settings.stages:
        if settings.concurrency or settings.rate:
            raise ConfigError("--stages sets the load: no --concurrency or --rate with it")
        kind, stages = settings.stages
        mode = LoadMode.CLOSED if kind == "concurrency" else LoadMode.OPEN
        peak = max(stage.target for stage in stages)
        return LoadConfig(
            mode=mode,
            concurrency=max(1, round(peak)),
            rate_rps=peak if mode is LoadMode.OPEN else None,
            stages=stages,
            requests=settings.requests,
            duration_s=settings.duration,
            **common,
        )
    return None


def _levels(settings: Settings, sweep: bool) -> list[LoadConfig]:
    single = _single_schedule(settings)
    if single is not None:
        return [single]
    concurrency, rate = settings.concurrency, settings.rate
    if concurrency is not None and rate is not None:
        raise ConfigError("--concurrency and --rate are exclusive: closed loop or open loop, not both")
    batch_sizes = [int(b) for b in settings.batch_size or [1]]
    if concurrency is None and rate is None:
        concurrency = [1] if not sweep or len(batch_sizes) > 1 else [1, 2, 4, 8, 16, 32, 64]
    points = concurrency if concurrency is not None else rate or []
    if not sweep and len(points) > 1:
        flag = "--concurrency" if concurrency is not None else "--rate"
        raise ConfigError(f"{flag}: 'run' takes one level; use 'loadgen sweep' for {len(points)} levels")
    if len(batch_sizes) > 1 and (len(points) > 1 or not sweep):
        raise ConfigError("--batch-size: a batch-size sweep holds the load at one --concurrency or --rate level")
    if max(batch_sizes) > 1:
        if not api_spec(settings.api).batches:
            raise ConfigError(f"--batch-size: --api {settings.api} takes one prompt per request; "
                              f"batches go to {', '.join(BATCH_APIS)}")  # fmt: skip
        if not settings.no_stream:
            raise ConfigError("--batch-size: batched requests are read whole; add --no-stream")
    levels = []
    for point, batch_size in [(p, b) for p in points for b in batch_sizes]:
        if concurrency is not None:
            mode, users, rate_rps = LoadMode.CLOSED, int(point), None
            default_requests, default_warmup = max(8, 4 * users), (users, 0.0)
        else:
            mode, users, rate_rps = LoadMode.OPEN, 1, float(point)
            default_requests, default_warmup = max(20, round(10 * point)), (0, 0.0)
        requests = settings.requests
        if requests is None and settings.duration is None:
            requests = default_requests
        warmup_requests, warmup_s = settings.warmup if settings.warmup is not None else default_warmup
        levels.append(
            LoadConfig(
                mode=mode,
                concurrency=users,
                rate_rps=rate_rps,
                arrival=Arrival(settings.arrival),
                burstiness=settings.burstiness,
                max_inflight=settings.max_inflight,
                requests=requests,
                duration_s=settings.duration,
                warmup_requests=warmup_requests,
                warmup_s=warmup_s,
                seed=settings.seed,
                drain_timeout_s=settings.drain_timeout,
                ramp_up_s=settings.ramp_up,
                batch_size=batch_size,
            )
        )
    return levels
