"""Metrics layer: the typed result of a level (``RunSummary``), of a sweep (``SweepResult``) and
the options behind them (``RunConfig``).

``summary.json``, ``sweep.json`` and ``config.json`` are these objects as JSON (``to_json``), and
``from_json`` reads them back, checked field by field: a file that does not fit is one line
naming the field. The console, the HTML report, the CSV export, the planner and ``compare`` read
these objects, never the JSON. (``compare.json`` is ``loadgen.metrics.comparison``'s.)

They are ``msgspec`` structs: frozen, typed, and converted from JSON with validation, where a
hand-written ``from_dict`` per class would repeat every field name a second time.

Schema versions:

- 1: sections loadgen had nothing for (no telemetry, no verdict yet, not run by workers) were left
  out of the file.
- 2: every field is written, ``null`` where not measured or not applicable.

Both load; a field added after a file was written takes its default (``None``, 0, empty).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from loadgen.errors import ConfigError
from loadgen.metrics.histogram import Stats

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)


class Section(msgspec.Struct, frozen=True, kw_only=True):
    """A part of a result: frozen, fields by keyword. A field that a schema-1 file may lack has a
    default; the few without one (an ``Answers``' counts) were written whenever their section was."""

    def to_json(self) -> dict[str, Any]:
        return as_json(self)

    @classmethod
    def from_json(cls: type[SectionT], data: object, where: str | None = None) -> SectionT:
        """From its JSON, checked; ``where`` (a file's path) starts the one-line error."""
        return convert_result(data, cls, where or cls.__name__)


SectionT = TypeVar("SectionT", bound=Section)


class Distribution(Section, frozen=True, kw_only=True):
    """A metric's distribution in display units (ms, tokens/s). ``count`` None: an imported
    result whose source did not say how many samples stood behind its percentiles."""

    count: int | None = None
    mean: float | None = None
    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p99_9: float | None = None
    max: float | None = None
    # the percentiles too few samples stand behind (``samples_needed``), decided here from ``count``
    thin_percentiles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.count is not None:
            thin = tuple(name for name, fraction in PERCENTILES.items()
                         if getattr(self, name) is not None and self.count < samples_needed(fraction))  # fmt: skip
            msgspec.structs.force_setattr(self, "thin_percentiles", thin)

    def thin(self, name: str) -> bool:
        """Whether the percentile ``name`` (``p99``) stands on fewer samples than it needs."""
        return name in self.thin_percentiles

    @classmethod
    def of(cls, stats: Stats) -> Distribution:
        return cls(count=stats.count, mean=stats.mean, min=stats.min, p50=stats.p50, p90=stats.p90, p95=stats.p95,
                   p99=stats.p99, p99_9=stats.p99_9, max=stats.max)  # fmt: skip

    @property
    def known(self) -> bool:
        """Whether the result has this metric at all (an older or imported one may not)."""
        return self.count is not None or any(value is not None for value in (self.mean, self.p50, self.p99, self.max))

    def statistic(self, name: str) -> float | None:
        """``mean``, ``min``, ``p50`` … ``p99_9``, ``max`` by name, as an SLO or threshold names it."""
        if name not in STATISTICS:
            raise KeyError(name)
        value: float | None = getattr(self, name)
        return value


STATISTICS = ("mean", "min", "p50", "p90", "p95", "p99", "p99_9", "max")
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p99_9": 0.999}
CONFIDENCE_Z = 1.96  # a two-sided 95 % interval


def samples_needed(fraction: float) -> int:
    """The fewest samples that bound a percentile from above: with n samples, the 95 % confidence
    interval of the ``fraction`` quantile runs between two order statistics (distribution-free, by
    the binomial's normal approximation), the upper one at rank n·p + 1.96·√(n·p·(1−p)). While
    that rank is past n, the interval reaches beyond the largest sample: the true percentile may
    be any value above it. So n ≥ 1.96²·p/(1−p): 4 for p50, 35 for p90, 381 for p99, 3,838 for p99.9."""
    return math.ceil(CONFIDENCE_Z**2 * fraction / (1 - fraction))


EMPTY = Distribution()


class Stage(Section, frozen=True, kw_only=True):
    duration_s: float
    target: float


class Load(Section, frozen=True, kw_only=True):
    mode: str = "closed"  # "closed" (users) or "open" (arrival rate)
    concurrency: int | None = None
    rate: float | None = None
    arrival: str | None = None
    burstiness: float | None = None
    max_inflight: int | None = None
    requests: int | None = None
    duration_s: float | None = None
    warmup_requests: int | None = None
    warmup_s: float | None = None
    seed: int | None = None
    ramp_up_s: float | None = None
    stages: tuple[Stage, ...] | None = None
    trace_file: str | None = None
    trace_speed: float | None = None
    batch_size: int = 1

    @property
    def closed(self) -> bool:
        return self.mode == "closed"

    @property
    def scheduled(self) -> bool:
        """Load from a trace or stages: no single level of load."""
        return bool(self.trace_file or self.stages)

    @property
    def value(self) -> float:
        """The level of load: users in closed loop, requests/s in open loop."""
        return float((self.concurrency if self.closed else self.rate) or 0)


class Clock(Section, frozen=True, kw_only=True):
    source: str = "time.perf_counter_ns"
    stamp_source: str | None = None  # None: written before kernel stamps
    kernel_stamped_reads: int = 0
    stamp_anomalies: int = 0
    read_batching_pauses: int = 0
    sent_stamp: str | None = None
    monotonic_start_ns: int = 0
    window_ns: tuple[int | None, int | None] | None = None
    epoch_start_s: float = 0.0
    note: str | None = None


class Latency(Section, frozen=True, kw_only=True):
    ttft: Distribution = EMPTY
    ttfot: Distribution = EMPTY  # to the first answer token, past reasoning
    itl: Distribution = EMPTY
    itl_chunk: Distribution = EMPTY
    tpot: Distribution = EMPTY
    e2e: Distribution = EMPTY
    schedule_lag: Distribution = EMPTY
    read_lag: Distribution = EMPTY
    connect: Distribution = EMPTY

    def metric(self, name: str) -> Distribution:
        """A latency by the name an SLO, a threshold or a table row gives it."""
        if name not in LATENCY_NAMES:
            raise KeyError(name)
        distribution: Distribution = getattr(self, name)
        return distribution


LATENCY_NAMES = ("ttft", "ttfot", "itl", "itl_chunk", "tpot", "e2e", "schedule_lag", "read_lag", "connect")


class Throughput(Section, frozen=True, kw_only=True):
    requests_per_s: float | None = None
    output_tokens_per_s: float | None = None
    input_tokens_per_s: float | None = None
    sequences_per_s: float | None = None
    offered_requests_per_s: float | None = None  # open loop: the rate that was set
    arrived_requests_per_s: float | None = None  # open loop: the rate requests were due, as measured


class Requests(Section, frozen=True, kw_only=True):
    completed: int | None = None  # None: an imported result whose source did not count
    failed: int | None = None
    error_rate: float | None = None
    errors_by_kind: dict[str, int] = {}
    first_error_by_kind: dict[str, str] = {}
    warmup_excluded: int = 0
    cancelled_at_end: int = 0
    finish_reasons: dict[str, int] = {}


class Tokens(Section, frozen=True, kw_only=True):
    output_total: int | None = None
    input_total: int | None = None
    cached_input_total: int | None = None  # served from the server's prefix cache
    reasoning_total: int | None = None  # of output_total, reasoning before the answer (None: no reasoning)
    reasoning_requests: int | None = None
    output_per_request: float | None = None  # imported results: the source's mean lengths
    input_per_request: float | None = None


class ServerJoin(Section, frozen=True, kw_only=True):
    """``--server-timings otlp``: how the server's OpenTelemetry spans joined the level's requests
    (by the trace id of the ``traceparent`` each request carried)."""

    joined: int = 0  # completed requests with a span
    completed: int = 0
    sent: int = 0  # measured requests sent: the completed and the failed
    rate: float | None = None  # joined / completed
    spans: int = 0  # spans of the level's traces received (warm-up requests' too)
    unmatched: int = 0  # of those, spans that match no request of the level's records
    other_traces: int = 0  # spans of traces loadgen did not start, received meanwhile (other clients, server work)
    waited_s: float = 0.0  # after the load, for the last spans
    note: str | None = None  # said when the join is not whole (under 95 %, or unmatched spans)


class ServerAccount(Section, frozen=True, kw_only=True):
    """The server's own account of the level's requests, where it gave one per request (llama.cpp's
    ``timings``, TGI's ``x-*-time`` headers, OpenTelemetry spans): each part's distribution in ms
    (None where the server does not report that part), the parts derived from loadgen's own
    figures (``loadgen.metrics.server_account``), and how many of the completed requests it covers."""

    sources: dict[str, int] = {}
    requests: int = 0
    share: float | None = None  # of the completed requests
    queue_ms: Distribution | None = None
    prefill_ms: Distribution | None = None
    decode_ms: Distribution | None = None
    compute_ms: Distribution | None = None
    ttft_ms: Distribution | None = None  # the server's own time to first token
    total_ms: Distribution | None = None  # the server's own end to end
    client_overhead_ms: Distribution | None = None  # send lag of the requests accounted for
    transit_ms: Distribution | None = None  # client TTFT − send lag − server TTFT
    frontend_ms: Distribution | None = None  # server TTFT − queue − prefill
    transit_negative: int = 0  # requests whose server TTFT passed loadgen's (counted as 0 transit)
    join: ServerJoin | None = None

    def mean(self, part: str) -> float | None:
        distribution = getattr(self, part)
        return distribution.mean if isinstance(distribution, Distribution) else None


class TurnFigures(Section, frozen=True, kw_only=True):
    """One turn of a level's sessions: its TTFT, and its prompt (the history grows with the turn)
    and how much of it the server served from its prefix cache (from ``usage``)."""

    turn: int
    requests: int = 0
    ttft_ms: Distribution = EMPTY
    input_tokens_mean: float | None = None
    cached_input_tokens_mean: float | None = None


class Goodput(Section, frozen=True, kw_only=True):
    slo_ms: dict[str, float] = {}
    good_requests: int = 0
    fraction: float | None = None
    requests_per_s: float | None = None


class Answers(Section, frozen=True, kw_only=True):
    checked: int
    correct: int
    accuracy: float


class TokenCounting(Section, frozen=True, kw_only=True):
    output_method: str | None = None
    output_requests_by_method: dict[str, int] = {}
    input_method: str | None = None
    input_requests_by_method: dict[str, int] = {}
    itl_split: dict[str, int] = {}
    tokenizer: str | None = None
    comparisons: dict[str, dict[str, float | int | None]] = {}  # "<method>_vs_server_usage"


class Connections(Section, frozen=True, kw_only=True):
    opened: int = 0
    opened_before_load: int = 0
    reconnects: int = 0
    retried_requests: int = 0
    closes_announced: int = 0  # responses that said Connection: close: those reconnects were asked for
    connect_ms: Distribution | None = None


class Client(Section, frozen=True, kw_only=True):
    cpu_percent: float | None = None
    cpu_percent_max: float | None = None
    host_cpu_percent_max: float | None = None  # the whole machine, all cores: 100 = every core busy
    rss_bytes_max: int | None = None
    saturated: bool = False
    cpu_saturated: bool = False
    schedule_lag_saturated: bool = False
    read_lag_high: bool = False
    read_lag_saturated: bool = False
    coalesced_chunk_share: float = 0.0
    send_lag_ms: Distribution = EMPTY
    read_lag_ms: Distribution = EMPTY
    connections: Connections | None = None


class MeanMax(Section, frozen=True, kw_only=True):
    mean: float
    max: float


class GpuFigures(Section, frozen=True, kw_only=True):
    util_percent: MeanMax | None = None
    mem_util_percent: MeanMax | None = None
    memory_used_gib: MeanMax | None = None
    power_w: MeanMax | None = None
    sm_clock_mhz: MeanMax | None = None
    temperature_c: MeanMax | None = None
    throttled_samples: int = 0
    pcie_tx_bytes_per_s: MeanMax | None = None
    pcie_rx_bytes_per_s: MeanMax | None = None
    nvlink_tx_bytes_per_s: float | None = None
    nvlink_rx_bytes_per_s: float | None = None
    energy_j: float | None = None


class NeuronFigures(Section, frozen=True, kw_only=True):
    core_util_percent: MeanMax | None = None
    device_memory_used_gib: MeanMax | None = None
    execution_latency_p99_ms: MeanMax | None = None


class HostFigures(Section, frozen=True, kw_only=True):
    cpu_percent: MeanMax | None = None
    memory_used_bytes: MeanMax | None = None


class ProcessFigures(Section, frozen=True, kw_only=True):
    cpu_percent: MeanMax | None = None
    rss_bytes: MeanMax | None = None


class OwnLatency(Section, frozen=True, kw_only=True):
    mean: float
    count: int


class ServerFigures(Section, frozen=True, kw_only=True):
    """What a server's Prometheus metrics said over the level's window (vLLM, llama.cpp, TGI, the
    simulator): gauges as mean and max, counters as rates."""

    requests_running: MeanMax | None = None
    requests_waiting: MeanMax | None = None
    kv_cache_usage_percent: MeanMax | None = None
    generation_tokens_per_s: MeanMax | None = None
    spec_acceptance_rate: float | None = None
    batch_per_decode: MeanMax | None = None
    finished_tokens_per_s_mean: float | None = None
    own_latency_ms: dict[str, OwnLatency] | None = None  # the server's own histograms: ttft, tpot, itl, e2e
    average_batch_size: float | None = None


class Telemetry(Section, frozen=True, kw_only=True):
    """The sidecar's samples over the level's measured window."""

    samples: int = 0
    gpu: dict[str, GpuFigures] | None = None
    energy_j: float | None = None
    energy_method: str | None = None  # energy_counter or power_integral
    joules_per_output_token: float | None = None
    output_tokens_per_joule: float | None = None
    neuron: dict[str, NeuronFigures] | None = None
    host: HostFigures | None = None
    process: ProcessFigures | None = None
    server: ServerFigures | None = None
    sampler: dict[str, Any] | None = None  # the sidecar's own figures: samples per source, its CPU

    def gpu_figures(self) -> list[GpuFigures]:
        return list((self.gpu or {}).values())


class TritonTimeSplit(Section, frozen=True, kw_only=True):
    queue: float = 0.0
    compute_input: float = 0.0
    compute_infer: float = 0.0
    compute_output: float = 0.0

    @property
    def compute(self) -> float:
        return self.compute_input + self.compute_infer + self.compute_output


class TritonModelFigures(Section, frozen=True, kw_only=True):
    requests_succeeded: int = 0
    requests_failed: int = 0
    executions: int = 0
    inferences: int = 0
    failed_by_reason: dict[str, int] | None = None
    average_batch_size: float | None = None
    requests_per_execution: float | None = None
    per_request_ms: TritonTimeSplit | None = None


class TritonFigures(Section, frozen=True, kw_only=True):
    """Triton's own metrics over the level (the difference of two scrapes)."""

    source: str = "triton_metrics"
    model: TritonModelFigures | None = None  # the model under load; None: it did no work
    models: dict[str, TritonModelFigures] = {}


class TargetLag(Section, frozen=True, kw_only=True):
    source: str
    late_s: float
    modelled_s: float
    lag_fraction: float


class Validity(Section, frozen=True, kw_only=True):
    verdict: str  # valid, mostly_failed, client_saturated, host_busy, target_lagging
    valid: bool
    marks: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    checked: tuple[str, ...] = ()


class ThresholdOutcome(Section, frozen=True, kw_only=True):
    threshold: str
    metric: str
    fails_when: str
    limit: float
    measured: float | None
    unit: str
    passed: bool
    line: str


class Workers(Section, frozen=True, kw_only=True):
    count: int
    cpu_percent: tuple[float | None, ...] = ()
    lost: tuple[str, ...] = ()


class LocustTest(Section, frozen=True, kw_only=True):
    processes: int
    users: int
    monotonic_start_ns: int
    monotonic_end_ns: int
    lost_workers: tuple[str, ...] = ()


class LostWrites(Section, frozen=True, kw_only=True):
    error: str
    lost_writes: int


class ImportedSource(Section, frozen=True, kw_only=True):
    """Where an imported result came from, and what its figures mean in loadgen's terms."""

    tool: str
    files: tuple[str, ...] = ()
    definitions: dict[str, str] = {}
    lacks: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    derived: tuple[str, ...] = ()


class RunSummary(Section, frozen=True, kw_only=True):
    """One run, or one level of a sweep or comparison."""

    schema_version: int = SCHEMA_VERSION
    loadgen_version: str | None = None
    endpoint: str | None = None
    api: str | None = None
    model: str | None = None
    stream: bool | None = None
    started_at: str | None = None
    ended_at: str | None = None
    partial: bool = False
    stop_reason: str | None = None
    load: Load = Load()
    clock: Clock | None = None
    measured_window_s: float | None = None
    latency_ms: Latency = Latency()
    output_tokens_per_s_per_request: Distribution = EMPTY
    confidence: Distribution | None = None
    throughput: Throughput = Throughput()
    requests: Requests = Requests()
    tokens: Tokens = Tokens()
    goodput: Goodput | None = None
    answers: Answers | None = None
    token_counting: TokenCounting = TokenCounting()
    client: Client = Client()
    histogram_out_of_range: dict[str, int] = {}
    listener_failures: dict[str, int] = {}
    telemetry: Telemetry | None = None
    output_errors: dict[str, LostWrites] | None = None
    server: TritonFigures | None = None
    target: TargetLag | None = None
    validity: Validity | None = None
    thresholds: tuple[ThresholdOutcome, ...] | None = None
    workers: Workers | None = None
    locust: LocustTest | None = None
    imported: ImportedSource | None = None
    derived: tuple[str, ...] | None = None
    turns: tuple[TurnFigures, ...] | None = None  # multi-turn sessions: by turn (1-based)
    server_timings: ServerAccount | None = None  # the server's own per-request account, where it gives one

    @property
    def completed(self) -> int:
        return self.requests.completed or 0

    @property
    def failed(self) -> int:
        return self.requests.failed or 0

    @property
    def records_lost(self) -> bool:
        """A result file or a listener lost records: the figures are whole, the files are not."""
        return bool(self.output_errors or self.listener_failures)

    @property
    def lost_workers(self) -> tuple[str, ...]:
        """The worker processes (``--workers``) or Locust workers that died mid-level."""
        if self.workers is not None:
            return self.workers.lost
        return self.locust.lost_workers if self.locust is not None else ()

    @property
    def label(self) -> str:
        """The level as a sweep names it: ``c=16``, ``r=4``, ``c=8 b=4``, ``trace``; ``*`` when partial."""
        load = self.load
        if load.scheduled:
            label = "trace" if load.trace_file else "stages"
        else:
            label = f"c={load.concurrency}" if load.closed else f"r={load.rate or 0:g}"
        if load.batch_size > 1:
            label += f" b={load.batch_size}"
        return label + "*" if self.partial else label

    @property
    def thresholds_breached(self) -> tuple[ThresholdOutcome, ...]:
        return tuple(outcome for outcome in self.thresholds or () if not outcome.passed)


class FindMaxOutcome(Section, frozen=True, kw_only=True):
    passed: float | None
    failed: float | None
    unit: str


class RunConfig(Section, frozen=True, kw_only=True):
    """``config.json``: what was asked for (the options as given), so a result can be rerun."""

    endpoint: str | None = None
    api: str | None = None
    model: str | None = None
    simulator_profile: str | None = None
    header_names: tuple[str, ...] = ()
    options: dict[str, Any] = {}  # by option name, as ``scenario.options`` names them
    variants: tuple[dict[str, Any], ...] | None = None  # compare: each variant's name, target, extra_body
    imported: ImportedSource | None = None


class SweepResult(Section, frozen=True, kw_only=True):
    """``sweep.json``: every level's summary, in the order run (a find-max search: probe order)."""

    schema_version: int = SCHEMA_VERSION
    config: RunConfig = RunConfig()
    levels: tuple[RunSummary, ...] = ()
    find_max: FindMaxOutcome | None = None
    imported: ImportedSource | None = None
    # from level to level, which part of TTFT grew (``metrics.server_account.breakdown_growth``)
    ttft_growth: tuple[str, ...] = ()


Result = TypeVar("Result", bound=msgspec.Struct)


def as_json(result: msgspec.Struct) -> dict[str, Any]:
    """A result as the JSON types ``json`` writes and reads (lists, not tuples)."""
    data: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(result))
    return data


def convert_result(data: object, kind: type[Result], where: str) -> Result:
    """A result from its JSON; one line naming the field when it does not fit."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version", 1)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ConfigError(f"{where}: schema_version {version} was written by a newer loadgen (this one reads "
                          f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}); upgrade loadgen")  # fmt: skip
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{where}: {error}") from None
    except RecursionError:
        raise ConfigError(f"{where}: JSON nested too deeply to be a loadgen result") from None


def read_json_file(path: Path) -> object:
    """A result file's JSON; one line naming it when it cannot be read or does not parse, which
    is what a run cut off by a crash or a full disk leaves."""
    try:
        return msgspec.json.decode(path.read_bytes())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror or error})") from None
    except msgspec.DecodeError as error:
        raise ConfigError(f"{path}: not valid JSON ({error}); was the run cut off?") from None
    except RecursionError:
        raise ConfigError(f"{path}: JSON nested too deeply to be a loadgen result") from None


def read_summary(path: Path) -> RunSummary:
    return RunSummary.from_json(read_json_file(path), str(path))


def read_sweep(path: Path) -> SweepResult:
    return SweepResult.from_json(read_json_file(path), str(path))


def read_config(path: Path) -> RunConfig:
    return RunConfig.from_json(read_json_file(path), str(path))


def read_levels(directory: Path) -> SweepResult | None:
    """The levels of a result directory: its ``sweep.json``, or its one ``summary.json`` as a
    sweep of one level (with its ``config.json``, when there); None when it holds neither."""
    if (directory / "sweep.json").is_file():
        return read_sweep(directory / "sweep.json")
    if not (directory / "summary.json").is_file():
        return None
    config = read_config(directory / "config.json") if (directory / "config.json").is_file() else RunConfig()
    summary = read_summary(directory / "summary.json")
    return SweepResult(schema_version=summary.schema_version, config=config, levels=(summary,))
