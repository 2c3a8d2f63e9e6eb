"""Shared bottom layer: the frozen configuration objects every layer reads.

The CLI and scenario files build these; nothing below the CLI sees argparse namespaces.
Times are seconds as floats here (user-facing), converted to nanoseconds where measured.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LoadMode(str, enum.Enum):
    CLOSED = "closed"  # N virtual users, each sends when its last request ends
    OPEN = "open"  # arrivals at a rate, independent of responses


class Arrival(str, enum.Enum):
    CONSTANT = "constant"
    POISSON = "poisson"
    GAMMA = "gamma"


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    url: str
    api: str
    model: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    api_key_env: str | None = None
    connect_timeout_s: float = 10.0
    first_token_timeout_s: float = 120.0
    total_timeout_s: float = 600.0
    verify_tls: bool = True
    schema: str | None = None  # the body format for sagemaker and lmi-local: lmi, tgi or openai-chat
    sagemaker_endpoint: str | None = None
    region: str | None = None
    inference_component: str | None = None
    custom_attributes: str | None = None
    target_variant: str | None = None
    aws_profile: str | None = None
    triton: dict[str, object] | None = None  # the triton: options mapping (protocols.triton.parse_triton_options)
    triton_model: dict[str, object] | None = None  # the model's signature, fetched before the run


@dataclass(frozen=True, slots=True)
class GenerationConfig:
    max_tokens: int | None = 256
    ignore_eos: bool = False
    temperature: float | None = None
    stream: bool = True
    extra_body: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class Stage:
    """Over ``duration_s`` the load moves linearly from the previous stage's target (0 before the
    first) to ``target``: users in closed loop, requests/s in open loop."""

    duration_s: float
    target: float


@dataclass(frozen=True, slots=True)
class LoadConfig:
    mode: LoadMode = LoadMode.CLOSED
    concurrency: int = 1
    rate_rps: float | None = None
    arrival: Arrival = Arrival.POISSON
    burstiness: float = 1.0
    max_inflight: int | None = None
    requests: int | None = None
    duration_s: float | None = None
    warmup_requests: int = 0
    warmup_s: float = 0.0
    seed: int = 0
    drain_timeout_s: float = 30.0
    ramp_up_s: float = 0.0  # closed loop: users start evenly spread over this time
    stages: tuple[Stage, ...] = ()
    trace_file: str | None = None
    trace_speed: float = 1.0
    trace_format: str | None = None  # None: recognised from the file
    worker_index: int = 0  # this process's share of a load split over worker_count processes
    worker_count: int = 1
    batch_size: int = 1  # prompts per request (a batch-size sweep)

    def describe(self) -> str:
        if self.trace_file:
            return f"trace {self.trace_file} ×{self.trace_speed:g}"
        if self.stages:
            unit = "users" if self.mode is LoadMode.CLOSED else "req/s"
            return "stages " + " → ".join(f"{stage.target:g} {unit}" for stage in self.stages)
        batch = f", batch {self.batch_size}" if self.batch_size > 1 else ""
        if self.mode is LoadMode.CLOSED:
            return f"concurrency {self.concurrency}{batch}"
        return f"rate {self.rate_rps:g} req/s{batch}"


@dataclass(frozen=True, slots=True)
class SloTarget:
    """One latency objective: on a percentile (``ttft_p99``), on the mean (``ttft_mean``, for
    planning from tables that carry only means), or per request (neither; used for goodput)."""

    metric: str
    threshold_ns: int
    percentile: float | None = None
    mean: bool = False

    @property
    def per_request(self) -> bool:
        return self.percentile is None and not self.mean

    @property
    def statistic(self) -> str:
        """``p99``, ``mean``, or ``""`` for a per-request objective."""
        if self.mean:
            return "mean"
        return "" if self.percentile is None else f"p{self.percentile:g}"

    def describe(self) -> str:
        """As a person writes it: ``ttft p99 ≤ 500 ms``."""
        return f"{self.metric}{' ' + self.statistic if self.statistic else ''} ≤ {self.threshold_ns / 1e6:g} ms"


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    sources: tuple[str, ...] = ()  # "gpu", "neuron", "host", "server"
    interval_s: float = 0.25
    remote_url: str | None = None
    server_metrics_url: str | None = None  # None: the endpoint's /metrics
    server_metric_names: tuple[str, ...] = ()
    gpu_devices: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.sources or self.remote_url)
