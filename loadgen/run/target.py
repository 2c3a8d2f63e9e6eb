"""Run tier: the ``Target`` a command measures, made once per command (once per variant in
``compare``): the endpoint after its preflight (model discovery, Triton's checks), the token
counter, the redactor, the stop signal, the events to report to, the telemetry sidecar and the
server's own metrics (``ServerProbes``); and the transport and request context each level uses."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from loadgen.clock import MonotonicClock
from loadgen.config import EndpointConfig
from loadgen.engine.model_check import check_triton_model
from loadgen.engine.preflight import discover_model, preflight
from loadgen.engine.request import RequestContext, body_limit_bytes
from loadgen.errors import ConfigError
from loadgen.metrics.results import TargetLag, TritonFigures, TritonModelFigures
from loadgen.metrics.validity import target_lag
from loadgen.parsing import public_url, url_with_path
from loadgen.protocols import endpoint_codec
from loadgen.protocols.apis import TransportKind, api_spec
from loadgen.protocols.base import GenerationParams
from loadgen.protocols.triton import parse_triton_options, uses_token_ids
from loadgen.redact import redactor
from loadgen.run.events import RunEvents, Tone
from loadgen.run.loop import until_stopped
from loadgen.scenario.plan import Plan
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions
from loadgen.telemetry.otlp import DEFAULT_LISTEN, SpanReceiver
from loadgen.telemetry.prometheus import acceptance_rate, scrape_counters
from loadgen.telemetry.sidecar import SidecarSampler
from loadgen.telemetry.triton import default_metrics_url, levels_by_model, scrape_triton
from loadgen.tokenizer import TokenCounter, load_token_counter
from loadgen.transport.base import Transport
from loadgen.transport.http import HttpTransport

SIM_MODEL = "sim-llm"


@dataclass(frozen=True, slots=True)
class ServerReading:
    """What the server's own metrics say of one level."""

    server: TritonFigures | None = None
    lag: TargetLag | None = None
    acceptance_rate: float | None = None  # speculative decoding: drafts accepted (vLLM, llama.cpp, the simulator)


@dataclass(frozen=True, slots=True)
class Scrape:
    triton: dict[str, Any] | None = None
    counters: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class ServerProbes:
    """The server's metrics pages read before and after each level: Triton's, and the Prometheus
    counters of the target's own lag and of speculative decoding."""

    triton_url: str | None = None
    counters_url: str | None = None
    model: str | None = None

    async def scrape(self) -> Scrape:
        return Scrape(await _scrape_quietly(self.triton_url, scrape_triton), await _scrape_quietly(self.counters_url))

    async def reading(self, before: Scrape) -> ServerReading:
        after = await self.scrape()
        server = None
        if before.triton is not None and after.triton is not None:
            models = msgspec.convert(levels_by_model(before.triton, after.triton), dict[str, TritonModelFigures])
            server = TritonFigures(model=models.get(self.model or ""), models=models)
        counters_before, counters_after = before.counters, after.counters
        acceptance = acceptance_rate(counters_before, counters_after) if counters_before and counters_after else None
        return ServerReading(server, target_lag(counters_before, counters_after), acceptance)


class TraceTags:
    """The first 20 hex digits of the trace ids of a command's requests: the command's own 16
    (random), then the level's 4 (0000: the preflight)."""

    def __init__(self) -> None:
        self.command = secrets.token_hex(8)
        self._levels = 0

    @property
    def preflight(self) -> str:
        return f"{self.command}0000"

    def next_level(self) -> str:
        self._levels += 1
        return f"{self.command}{(self._levels - 1) % 0xFFFF + 1:04x}"


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint as a command measures it. ``name``: the variant, in ``compare``."""

    plan: Plan
    endpoint: EndpointConfig
    events: RunEvents
    stop: asyncio.Event
    token_counter: TokenCounter | None = None
    redact: Callable[[str], str] = field(default=lambda text: text)
    probes: ServerProbes = ServerProbes()
    sidecar: SidecarSampler | None = None
    name: str | None = None
    explained: set[str] = field(default_factory=set)  # the client-lag warnings already said in full
    traces: TraceTags | None = None  # each request's traceparent (None: --server-timings off)
    spans: SpanReceiver | None = None  # --server-timings otlp: the server's spans, joined per level

    def transport(self, max_connections: int) -> Transport:
        return make_transport(self.endpoint, max_connections)

    def request_context(self, transport: Transport, clock: MonotonicClock, run_start_ns: int = 0,
                        concurrency: int = 1, trace_tag: str | None = None) -> RequestContext:  # fmt: skip
        return RequestContext(
            codec=endpoint_codec(self.endpoint, self.token_counter.encode if self.token_counter is not None else None),
            params=GenerationParams(self.endpoint.model, self.plan.generation),
            transport=transport,
            clock=clock,
            run_start_ns=run_start_ns,
            first_token_timeout_s=self.endpoint.first_token_timeout_s,
            token_counter=self.token_counter,
            redact=self.redact,
            save_text=self.plan.save_text,
            max_whole_body_bytes=body_limit_bytes(concurrency),
            session_header=self.plan.session_header,
            trace_tag=trace_tag if self.traces is not None else None,
            server_timings=self.plan.server_timings != "off",
        )


def unprepared_target(plan: Plan, events: RunEvents, stop: asyncio.Event) -> Target:
    """The plan's endpoint as it is (a worker process's, whose parent ran the preflight)."""
    token_counter = load_token_counter(plan.tokenizer) if plan.tokenizer else None
    return Target(plan, plan.endpoint, events, stop, token_counter, redactor(plan.secrets),
                  traces=TraceTags() if plan.server_timings != "off" else None)  # fmt: skip


PREFLIGHT_QUIET_S = 5.0  # a preflight still unanswered after this long is said, not waited out in silence


async def prepare_target(plan: Plan, endpoint: EndpointConfig, events: RunEvents, stop: asyncio.Event, *,
                         variant: str | None = None, spans: SpanReceiver | None = None) -> Target:  # fmt: skip
    """The endpoint after the preflight request (with model discovery and Triton's checks) and
    the server metrics it offers. ``variant``: a comparison's, whose speculative-decoding counters
    are read too; ``spans``: the command's OTLP receiver (``--server-timings otlp``)."""
    target = replace(unprepared_target(plan, events, stop), endpoint=endpoint, name=variant, spans=spans)
    if spans is not None and target.traces is not None:
        spans.expect_command(target.traces.command)
    transport = make_transport(endpoint, 2)
    waiting = f"waiting for {public_url(endpoint.url)} to answer the preflight request (up to "
    waiting += f"{endpoint.first_token_timeout_s:g} s, --first-token-timeout; Ctrl-C stops)"
    quiet = asyncio.get_running_loop().call_later(PREFLIGHT_QUIET_S, events.say, waiting, Tone.NOTE)
    try:
        if endpoint.model is None and api_spec(endpoint.api).lists_models:
            model = await discover_model(transport, public_url(endpoint.url))
            if model is not None:
                endpoint = replace(endpoint, model=model)
                events.say(f"Model: {model} (the one the server lists)", Tone.NOTE)
            else:
                events.say("No --model, and the server lists none at /v1/models: requests name no model",
                           Tone.WARNING)  # fmt: skip
        if api_spec(endpoint.api).triton:
            endpoint = await _check_triton(target, endpoint, transport)
        target = replace(target, endpoint=endpoint)
        tag = target.traces.preflight if target.traces is not None else None
        await preflight(target.request_context(transport, MonotonicClock(), trace_tag=tag), plan.prompts[0],
                        public_url(endpoint.url), endpoint.api)  # fmt: skip
    finally:
        quiet.cancel()
        await transport.close()
    speculation = variant is not None
    probes = ServerProbes(await _triton_metrics_url(target), await _counters_url(endpoint, speculation), endpoint.model)
    return replace(target, probes=probes)


async def prepared_unless_stopped(plan: Plan, endpoint: EndpointConfig, events: RunEvents, stop: asyncio.Event, *,
                                  variant: str | None = None,
                                  spans: SpanReceiver | None = None) -> Target | None:  # fmt: skip
    """``prepare_target``, or None (said) when a stop comes first: Ctrl-C must not wait out a
    preflight against a server that never answers."""
    target = await until_stopped(prepare_target(plan, endpoint, events, stop, variant=variant, spans=spans), stop)
    if target is None:
        events.say("interrupted during the preflight: no load was sent", Tone.WARNING)
    return target


async def _check_triton(target: Target, endpoint: EndpointConfig, transport: Transport) -> EndpointConfig:
    plan, events = target.plan, target.events
    options = parse_triton_options(endpoint.triton or {})
    if uses_token_ids(options) and plan.tokenizer is None:
        raise ConfigError("the Triton inputs take token ids ($input_ids): give --tokenizer to turn prompts into ids")
    signature = await check_triton_model(transport, endpoint.api, endpoint.model, options, plan.generation.stream,
                                         public_url(endpoint.url))  # fmt: skip
    inputs = ", ".join(f"{name} {info.datatype}{list(info.shape)}" for name, info in signature.inputs.items())
    kind = "decoupled" if signature.decoupled else "one response per request"
    events.say(f"Triton model {signature.name}: {kind}, max_batch_size {signature.max_batch_size}; inputs {inputs}",
               Tone.NOTE)  # fmt: skip
    streams = api_spec(endpoint.api).streams_tokens and plan.generation.stream
    if not streams:
        events.say("Not streamed: time to first token equals end-to-end latency.", Tone.NOTE)
    if plan.tokenizer is None and not streams:
        events.say("Triton reports no token counts: each answer counts as one token unless its output is token ids; "
                   "give --tokenizer for tokens/s.", Tone.WARNING)  # fmt: skip
    return replace(endpoint, triton_model=signature.to_json())


async def _triton_metrics_url(target: Target) -> str | None:
    """Triton's metrics URL when the endpoint is Triton and its metrics answer; else None (with a warning)."""
    endpoint = target.endpoint
    if not api_spec(endpoint.api).triton:
        return None
    url = target.plan.telemetry.server_metrics_url or default_metrics_url(endpoint.url)
    try:
        await asyncio.to_thread(scrape_triton, url)
    except (OSError, ValueError) as exc:
        target.events.say(f"Triton metrics not available ({exc}): no server batch size or queue/compute split; "
                          "set --server-metrics", Tone.WARNING)  # fmt: skip
        return None
    target.events.say(f"Triton metrics from {public_url(url)}", Tone.NOTE)
    return url


async def _counters_url(endpoint: EndpointConfig, speculation: bool) -> str | None:
    """The server's Prometheus page when it has counters loadgen reads: the simulator's own lag
    always; speculative decoding's (vLLM, llama.cpp) when comparing."""
    if not (speculation or api_spec(endpoint.api).simulated):
        return None
    url = url_with_path(endpoint.url, "/metrics")
    counters = await _scrape_quietly(url)
    return url if counters else None


async def _scrape_quietly(url: str | None, scrape: Callable[[str], Any] = scrape_counters) -> Any:
    """One scrape of a metrics URL off the event loop; None when there is none or it fails."""
    if url is None:
        return None
    try:
        return await asyncio.to_thread(scrape, url)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def span_receiver(plan: Plan, events: RunEvents) -> Iterator[SpanReceiver | None]:
    """``--server-timings otlp``: the command's OTLP/HTTP receiver, listening (and always stopped)."""
    if plan.server_timings != "otlp":
        yield None
        return
    host, port = plan.otlp_listen or (("127.0.0.1", 0) if plan.use_simulator else DEFAULT_LISTEN)
    receiver = SpanReceiver(host, port, plan.otlp_grpc_listen)
    try:
        url = receiver.start()
        if not plan.use_simulator:
            events.say(f"Receiving OpenTelemetry spans at {url}: point the server's OTLP/HTTP trace exporter there "
                       "(vLLM: --otlp-traces-endpoint " + url + " with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="
                       "http/protobuf)", Tone.NOTE)  # fmt: skip
        if receiver.grpc_target:
            events.say(f"Receiving OpenTelemetry spans over gRPC at {receiver.grpc_target} (vLLM: "
                       f"--otlp-traces-endpoint http://{receiver.grpc_target}; TGI: --otlp-endpoint "
                       f"http://{receiver.grpc_target})", Tone.NOTE)  # fmt: skip
        yield receiver
    finally:
        receiver.stop()


@contextlib.contextmanager
def simulated_or_given(plan: Plan, events: RunEvents, spans: SpanReceiver | None = None) -> Iterator[EndpointConfig]:
    """The plan's endpoint, or the built-in simulator (started, and always stopped) when none is
    given; with ``spans``, the simulator exports its requests' spans there."""
    if not plan.use_simulator:
        yield plan.endpoint
        return
    model = plan.endpoint.model or SIM_MODEL
    events.say(f"No --endpoint given: starting the built-in simulator (profile {plan.sim_profile}).", Tone.NOTE)
    options = SimOptions(
        model=model,
        prefix_cache=plan.sim_prefix_cache,
        reasoning_tokens=plan.sim_reasoning_tokens,
        otlp_endpoint=spans.url if spans is not None else None,
    )
    with SimProcess(SimSpec(plan.sim_profile, options)) as sim:
        events.say(f"Simulator on {sim.url}", Tone.NOTE)
        yield replace(plan.endpoint, url=sim.url, model=model)


@contextlib.contextmanager
def telemetry_sidecar(plan: Plan, endpoint_url: str, events: RunEvents,
                      client_pid: int | None = None) -> Iterator[SidecarSampler | None]:  # fmt: skip
    """The sampling sidecar for the whole command, writing ``telemetry.jsonl``; None if not asked for."""
    if not plan.telemetry.enabled:
        yield None
        return
    sidecar = SidecarSampler(plan.telemetry, endpoint_url, plan.output_dir / "telemetry.jsonl", client_pid)
    try:
        for source, reason in sidecar.start().items():
            events.say(f"telemetry: {source} not available: {reason}", Tone.WARNING)
        yield sidecar
    finally:
        sidecar.stop()


def make_transport(endpoint: EndpointConfig, max_connections: int) -> Transport:
    transport_kind = api_spec(endpoint.api).transport
    if transport_kind is TransportKind.GRPC:
        from loadgen.transport.grpc import GrpcTransport

        return GrpcTransport(endpoint.url, MonotonicClock(), max_streams=max_connections,
                             headers=dict(endpoint.headers), total_timeout_s=endpoint.total_timeout_s,
                             first_response_timeout_s=endpoint.first_token_timeout_s,
                             max_message_bytes=body_limit_bytes(max_connections))  # fmt: skip
    http = HttpTransport(endpoint.url, MonotonicClock(), max_connections=max_connections,
                         headers=dict(endpoint.headers), connect_timeout_s=endpoint.connect_timeout_s,
                         read_timeout_s=endpoint.first_token_timeout_s, total_timeout_s=endpoint.total_timeout_s,
                         verify_tls=endpoint.verify_tls)  # fmt: skip
    if transport_kind is not TransportKind.SIGV4_HTTP:
        return http
    from loadgen.transport.sigv4 import SigV4Transport, default_credentials

    return SigV4Transport(http, endpoint.url, default_credentials(endpoint.aws_profile), endpoint.region or "")
