"""Run tier: the endpoint before the load: the simulator when none is given, the preflight
request, model discovery, Triton's checks and metrics, the target's own lag, the telemetry sidecar,
and the transport and request context every level uses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console

from loadgen.clock import MonotonicClock
from loadgen.config import EndpointConfig
from loadgen.engine.model_check import check_triton_model
from loadgen.engine.preflight import discover_model, preflight
from loadgen.engine.request import RequestContext, body_limit_bytes
from loadgen.errors import ConfigError
from loadgen.metrics.results import RunSummary, TritonFigures, TritonModelFigures
from loadgen.parsing import public_url
from loadgen.protocols import Codec, endpoint_codec
from loadgen.protocols.apis import TransportKind, api_spec
from loadgen.protocols.base import GenerationParams
from loadgen.protocols.triton import parse_triton_options, uses_token_ids
from loadgen.redact import redactor
from loadgen.report.console import triton_line
from loadgen.scenario.plan import Plan
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions
from loadgen.telemetry.prometheus import scrape_counters
from loadgen.telemetry.sidecar import SidecarSampler
from loadgen.telemetry.triton import default_metrics_url, levels_by_model, scrape_triton
from loadgen.tokenizer import TokenCounter, load_token_counter
from loadgen.transport.base import Transport
from loadgen.transport.http import HttpTransport

SIM_MODEL = "sim-llm"


@contextlib.contextmanager
def endpoint_for(plan: Plan, console: Console) -> Iterator[EndpointConfig]:
    if not plan.use_simulator:
        yield plan.endpoint
        return
    model = plan.endpoint.model or SIM_MODEL
    console.print(f"No --endpoint given: starting the built-in simulator (profile {plan.sim_profile}).", style="dim")
    with SimProcess(SimSpec(plan.sim_profile, SimOptions(model=model))) as sim:
        console.print(f"Simulator on {sim.url}", style="dim")
        yield replace(plan.endpoint, url=sim.url, model=model)


async def prepared_endpoint(plan: Plan, endpoint: EndpointConfig, console: Console) -> EndpointConfig:
    """The endpoint after the preflight request (and model discovery, and Triton's metadata check)."""
    token_counter = load_token_counter(plan.tokenizer) if plan.tokenizer else None
    return await prepare_endpoint(plan, endpoint, token_counter, redactor(plan.secrets), console)


async def prepare_endpoint(
    plan: Plan,
    endpoint: EndpointConfig,
    token_counter: TokenCounter | None,
    redact: Callable[[str], str],
    console: Console,
) -> EndpointConfig:
    transport = make_transport(endpoint, 2)
    try:
        if endpoint.model is None and api_spec(endpoint.api).lists_models:
            model = await discover_model(transport, public_url(endpoint.url))
            if model is not None:
                endpoint = replace(endpoint, model=model)
                console.print(f"Model: {model} (the one the server lists)", style="dim")
        if api_spec(endpoint.api).triton:
            endpoint = await check_triton(plan, endpoint, transport, console)
        context = request_context(plan, endpoint, transport, MonotonicClock(), token_counter, redact)
        await preflight(context, plan.prompts[0], public_url(endpoint.url), endpoint.api)
    finally:
        await transport.close()
    return endpoint


async def check_triton(plan: Plan, endpoint: EndpointConfig, transport: Transport, console: Console) -> EndpointConfig:
    options = parse_triton_options(endpoint.triton or {})
    if uses_token_ids(options) and plan.tokenizer is None:
        raise ConfigError("the Triton inputs take token ids ($input_ids): give --tokenizer to turn prompts into ids")
    signature = await check_triton_model(transport, endpoint.api, endpoint.model, options, plan.generation.stream,
                                         public_url(endpoint.url))  # fmt: skip
    inputs = ", ".join(f"{name} {info.datatype}{list(info.shape)}" for name, info in signature.inputs.items())
    kind = "decoupled" if signature.decoupled else "one response per request"
    console.print(f"Triton model {signature.name}: {kind}, max_batch_size {signature.max_batch_size}; "
                  f"inputs {inputs}", style="dim")  # fmt: skip
    streams = api_spec(endpoint.api).streams_tokens and plan.generation.stream
    if not streams:
        console.print("Not streamed: time to first token equals end-to-end latency.", style="dim")
    if plan.tokenizer is None and not streams:
        console.print("Triton reports no token counts: each answer counts as one token unless its output is token ids; "
                      "give --tokenizer for tokens/s.", style="yellow")  # fmt: skip
    return replace(endpoint, triton_model=signature.to_json())


async def triton_metrics_url(plan: Plan, endpoint: EndpointConfig, console: Console) -> str | None:
    """Triton's metrics URL when the endpoint is Triton and its metrics answer; else None (with a warning)."""
    if not api_spec(endpoint.api).triton:
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


async def scrape_triton_quietly(url: str | None) -> dict[str, Any] | None:
    scraped: dict[str, Any] | None = await scrape_quietly(url, scrape_triton)
    return scraped


async def add_triton_figures(summary: RunSummary, url: str, before: dict[str, Any] | None, model: str | None,
                              level_dir: Path, console: Console, sweep: bool) -> RunSummary:  # fmt: skip
    """The summary with what Triton's metrics say of the level (``server``)."""
    after = await scrape_triton_quietly(url)
    if before is None or after is None:
        return summary
    models = msgspec.convert(levels_by_model(before, after), dict[str, TritonModelFigures])
    summary = msgspec.structs.replace(summary, server=TritonFigures(model=models.get(model or ""), models=models))
    if not sweep:
        console.print(triton_line(summary))
    return summary


@contextlib.contextmanager
def telemetry_sidecar(
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


async def target_lag_url(endpoint: EndpointConfig) -> str | None:
    """The target's metrics URL when it reports its own lag (the simulator does); else None."""
    if not api_spec(endpoint.api).simulated:
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


def make_transport(endpoint: EndpointConfig, max_connections: int) -> Transport:
    transport_kind = api_spec(endpoint.api).transport
    if transport_kind is TransportKind.GRPC:
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
    if transport_kind is not TransportKind.SIGV4_HTTP:
        return http
    from loadgen.transport.sigv4 import SigV4Transport, default_credentials

    return SigV4Transport(http, endpoint.url, default_credentials(endpoint.aws_profile), endpoint.region or "")


def make_codec(endpoint: EndpointConfig, token_counter: TokenCounter | None = None) -> Codec:
    return endpoint_codec(endpoint, token_counter.encode if token_counter is not None else None)


def request_context(
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
        codec=make_codec(endpoint, token_counter),
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
