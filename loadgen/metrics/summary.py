"""Metrics layer: the summary of one run (or sweep level), built once from its aggregator as a
typed ``RunSummary`` (``loadgen.metrics.results``); the console and ``summary.json`` render it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from loadgen import __version__
from loadgen.config import LoadConfig, LoadMode, SloTarget
from loadgen.engine.monitor import ClientReport
from loadgen.metrics.aggregate import LATENCY_METRICS, Aggregator
from loadgen.metrics.histogram import Histogram
from loadgen.metrics.results import (
    Answers,
    Client,
    Clock,
    Connections,
    Distribution,
    Goodput,
    Latency,
    Load,
    Requests,
    RunSummary,
    Stage,
    Throughput,
    TokenCounting,
    Tokens,
    TurnFigures,
)
from loadgen.transport.base import TransportReport
from loadgen.transport.stamps import StampSource

LAG_SATURATION_P99_MS = 10.0
READ_LAG_WARNING_P99_MS = 1.0


@dataclass(frozen=True, slots=True)
class RunInfo:
    endpoint: str
    api: str
    model: str | None
    load: LoadConfig
    stream: bool
    started_at: str
    ended_at: str
    partial: bool
    stop_reason: str
    client: ClientReport
    slo: tuple[SloTarget, ...]
    tokenizer: str | None
    listener_failures: dict[str, int]
    monotonic_start_ns: int = 0
    epoch_start_s: float = 0.0
    transport: TransportReport | None = None


MIN_REQUESTS_FOR_CLOSE_CHECK = 4
COALESCED_LIMIT = 0.01  # of the chunk gaps: above it, read lag has started to merge chunks


def build_summary(aggregator: Aggregator, info: RunInfo) -> RunSummary:
    aggregator.flush()
    window_s = aggregator.window_s
    totals = aggregator.totals
    latency = Latency(**{name: Distribution.of(totals[name].stats()) for name in LATENCY_METRICS})
    lag_p99 = latency.schedule_lag.p99
    lag_saturated = lag_p99 is not None and lag_p99 > LAG_SATURATION_P99_MS
    transport = info.transport or TransportReport(stamp_source=StampSource.USER.value)
    read_lag_p99 = latency.read_lag.p99
    read_lag_high = read_lag_p99 is not None and read_lag_p99 > READ_LAG_WARNING_P99_MS
    # with kernel stamps a late read keeps its bytes' true arrival time; it distorts figures only
    # once it is long enough for a stream's chunks to pile up into one read
    kernel_stamped = transport.stamp_source == StampSource.KERNEL.value
    read_lag_limit = LAG_SATURATION_P99_MS if kernel_stamped else READ_LAG_WARNING_P99_MS
    # kernel-stamped, a late read costs accuracy only when a stream's chunks piled up into one read
    # (they then share a stamp): judge by that share, beside a p95 (one host stall is not a run)
    coalesced = aggregator.zero_gaps / aggregator.gaps if aggregator.gaps else 0.0
    read_lag_judged = latency.read_lag.p95 if kernel_stamped else read_lag_p99
    read_lag_saturated = read_lag_judged is not None and read_lag_judged > read_lag_limit
    if kernel_stamped:
        read_lag_saturated = read_lag_saturated and coalesced > COALESCED_LIMIT
    total = aggregator.completed + aggregator.failed

    def per_second(value: float) -> float | None:
        return round(value / window_s, 3) if window_s else None

    load = info.load
    closed, open_loop = load.mode is LoadMode.CLOSED, load.mode is LoadMode.OPEN
    return RunSummary(
        loadgen_version=__version__,
        endpoint=info.endpoint,
        api=info.api,
        model=info.model,
        stream=info.stream,
        started_at=info.started_at,
        ended_at=info.ended_at,
        partial=info.partial,
        stop_reason=info.stop_reason,
        load=Load(
            mode=load.mode.value,
            concurrency=load.concurrency if closed else None,
            rate=load.rate_rps if open_loop else None,
            arrival=load.arrival.value if open_loop else None,
            burstiness=load.burstiness if open_loop else None,
            max_inflight=load.max_inflight,
            requests=load.requests,
            duration_s=load.duration_s,
            warmup_requests=load.warmup_requests,
            warmup_s=load.warmup_s,
            seed=load.seed,
            ramp_up_s=load.ramp_up_s if closed else None,
            stages=tuple(Stage(duration_s=stage.duration_s, target=stage.target) for stage in load.stages) or None,
            trace_file=load.trace_file,
            trace_speed=load.trace_speed if load.trace_file else None,
            batch_size=load.batch_size,
        ),
        clock=Clock(
            source="time.perf_counter_ns",
            stamp_source=transport.stamp_source,
            kernel_stamped_reads=transport.kernel_stamped_reads,
            stamp_anomalies=transport.stamp_anomalies,
            read_batching_pauses=transport.read_pauses,
            sent_stamp="when the request's last byte entered the kernel"
            if kernel_stamped
            else "when the request was handed to the transport",
            monotonic_start_ns=info.monotonic_start_ns,
            # the measured window (first intended send to the last end), ns after monotonic_start_ns
            window_ns=(aggregator.window_start_ns, aggregator.window_end_ns),
            epoch_start_s=info.epoch_start_s,
            note="record times are ns since monotonic_start_ns on this host's monotonic clock",
        ),
        measured_window_s=round(window_s, 6) if window_s else None,
        latency_ms=latency,
        output_tokens_per_s_per_request=Distribution.of(totals["output_tokens_per_s"].stats()),
        confidence=Distribution.of(totals["confidence"].stats()) if totals["confidence"].count else None,
        throughput=Throughput(
            requests_per_s=per_second(aggregator.completed),
            output_tokens_per_s=per_second(aggregator.output_tokens),
            input_tokens_per_s=per_second(aggregator.input_tokens) if aggregator.input_tokens_known else None,
            sequences_per_s=per_second(aggregator.completed * load.batch_size),
            # open loop: what was offered, beside what was achieved over the window (which includes the drain)
            offered_requests_per_s=load.rate_rps if open_loop else None,
            arrived_requests_per_s=_rounded(aggregator.arrivals_per_s) if open_loop else None,
        ),
        requests=Requests(
            completed=aggregator.completed,
            failed=aggregator.failed,
            error_rate=round(aggregator.failed / total, 6) if total else None,
            errors_by_kind=dict(aggregator.errors_by_kind),
            first_error_by_kind=dict(aggregator.first_error_by_kind),
            warmup_excluded=aggregator.warmup,
            cancelled_at_end=aggregator.cancelled,
            finish_reasons=dict(aggregator.finish_reasons),
        ),
        tokens=Tokens(
            output_total=aggregator.output_tokens,
            input_total=aggregator.input_tokens if aggregator.input_tokens_known else None,
            # prompt tokens the server served from its prefix cache (usage.prompt_tokens_details)
            cached_input_total=aggregator.cached_input_tokens if aggregator.cached_input_known else None,
            reasoning_total=aggregator.reasoning_tokens if aggregator.reasoning_requests else None,
            reasoning_requests=aggregator.reasoning_requests or None,
        ),
        goodput=_goodput(aggregator, info.slo, per_second),
        turns=_turns(aggregator),
        server_timings=aggregator.server.account(aggregator.completed),
        answers=Answers(
            checked=aggregator.answers_checked,
            correct=aggregator.answers_correct,
            accuracy=round(aggregator.answers_correct / aggregator.answers_checked, 6),
        )
        if aggregator.answers_checked
        else None,
        token_counting=_token_counting(aggregator, info.tokenizer),
        client=Client(
            cpu_percent=info.client.cpu_percent_mean,
            cpu_percent_max=info.client.cpu_percent_max,
            host_cpu_percent_max=info.client.host_cpu_percent_max,
            rss_bytes_max=info.client.rss_bytes_max,
            saturated=info.client.cpu_saturated or lag_saturated or read_lag_saturated,
            cpu_saturated=info.client.cpu_saturated,
            schedule_lag_saturated=lag_saturated,
            read_lag_high=read_lag_high,
            read_lag_saturated=read_lag_saturated,
            # consecutive chunks of one stream that came in one read (no gap between their stamps)
            coalesced_chunk_share=round(coalesced, 4),
            send_lag_ms=latency.schedule_lag,
            read_lag_ms=latency.read_lag,
            connections=Connections(
                opened=transport.connections_opened,
                opened_before_load=transport.connections_before_load,
                reconnects=transport.reconnects,
                retried_requests=transport.retries,
                closes_announced=transport.closes_announced,
                connect_ms=_connect_stats(transport.connect_ns),
            ),
        ),
        histogram_out_of_range={
            name: histogram.out_of_range for name, histogram in totals.items() if histogram.out_of_range
        },
        listener_failures=info.listener_failures,
    )


@dataclass(frozen=True, slots=True)
class LagWarning:
    """A client delay large enough to matter: ``text`` says the figures and what they mean,
    ``brief`` the figures alone, for the levels after the one where it was first said."""

    kind: str
    text: str
    brief: str


def client_lag_warnings(summary: RunSummary) -> list[LagWarning]:
    """What the console says when loadgen's own delays are large enough to matter."""
    client, clock = summary.client, summary.clock or Clock()
    warnings = []
    read_lag, send_lag = client.read_lag_ms, client.send_lag_ms
    if client.read_lag_high:
        kernel = clock.stamp_source == StampSource.KERNEL.value
        consequence = (
            "chunk times are the kernel's arrival stamps and stay true unless a stream's chunks pile up into one read"
            if kernel
            else "chunk times are read times here (no kernel stamps), so they include this delay"
        )
        figures = f"read lag p99 {read_lag.p99 or 0:.2f} ms (max {read_lag.max or 0:.2f} ms)"
        warnings.append(LagWarning(
            "read_lag",
            f"{figures} is over {READ_LAG_WARNING_P99_MS:g} ms: loadgen read bytes that late; {consequence} "
            "(fewer users per process or --workers lower it)",
            f"{figures}, over {READ_LAG_WARNING_P99_MS:g} ms (see above)",
        ))  # fmt: skip
    if client.schedule_lag_saturated:
        figures = f"send lag p99 {send_lag.p99 or 0:.2f} ms"
        warnings.append(LagWarning(
            "send_lag",
            f"{figures} is over {LAG_SATURATION_P99_MS:g} ms: requests left later than intended, and every latency "
            "includes that delay (use fewer users per process or --workers)",
            f"{figures}, over {LAG_SATURATION_P99_MS:g} ms (see above)",
        ))  # fmt: skip
    if clock.stamp_anomalies:
        figures = f"{clock.stamp_anomalies} kernel stamps were later than their read"
        warnings.append(LagWarning("stamp_anomalies", f"{figures} (a wall-clock step?); those reads used user-space "
                                   "stamps", f"{figures} (see above)"))  # fmt: skip
    connections = client.connections or Connections()
    completed = summary.completed
    reconnects = connections.reconnects - connections.closes_announced  # closes nobody announced
    if completed >= MIN_REQUESTS_FOR_CLOSE_CHECK and reconnects >= completed / 2:
        figures = f"{reconnects} reconnects for {completed} requests"
        warnings.append(LagWarning(
            "reconnects",
            f"the server closed the connection after most responses ({figures}) although HTTP/1.1 keeps it open "
            "(llama-server does after each stream): each request then pays a connect, measured apart in "
            f"latency_ms.connect; {connections.retried_requests} requests were re-sent on a fresh connection",
            f"{figures}: the server closes connections (see above)",
        ))  # fmt: skip
    return warnings


def _mean(total: int, count: int) -> float | None:
    return round(total / count, 1) if count else None


def _turns(aggregator: Aggregator) -> tuple[TurnFigures, ...] | None:
    if not aggregator.turns:
        return None
    return tuple(
        TurnFigures(
            turn=turn, requests=tally.requests, ttft_ms=Distribution.of(tally.ttft.stats()),
            input_tokens_mean=_mean(tally.input_tokens, tally.input_tokens_known),
            cached_input_tokens_mean=_mean(tally.cached_input_tokens, tally.cached_input_known),
        )
        for turn, tally in sorted(aggregator.turns.items())
    )  # fmt: skip


def _goodput(aggregator: Aggregator, slo: tuple[SloTarget, ...],
            per_second: Callable[[float], float | None]) -> Goodput | None:  # fmt: skip
    per_request = [target for target in slo if target.per_request]
    if not per_request:
        return None
    total = aggregator.completed + aggregator.failed
    return Goodput(
        slo_ms={target.metric: target.threshold_ns / 1e6 for target in per_request},
        good_requests=aggregator.good,
        fraction=round(aggregator.good / total, 6) if total else None,
        requests_per_s=per_second(aggregator.good),
    )


def _token_counting(aggregator: Aggregator, tokenizer: str | None) -> TokenCounting:
    comparisons: dict[str, dict[str, float | int | None]] = {}
    for method, (requests, usage_total, other_total) in aggregator.method_pairs.items():
        comparisons[f"{method}_vs_server_usage"] = {
            "requests": requests,
            "server_usage_tokens": usage_total,
            f"{method}_tokens": other_total,
            "difference_percent": round(100.0 * (other_total - usage_total) / usage_total, 3) if usage_total else None,
        }
    return TokenCounting(
        output_method=_dominant(aggregator.output_methods),
        output_requests_by_method=dict(aggregator.output_methods),
        input_method=_dominant(aggregator.input_methods),
        input_requests_by_method=dict(aggregator.input_methods),
        itl_split=dict(aggregator.itl_splits),
        tokenizer=tokenizer,
        comparisons=comparisons,
    )


def _dominant(counter: Counter[str]) -> str | None:
    return counter.most_common(1)[0][0] if counter else None


def _connect_stats(connect_ns: tuple[int, ...] | None) -> Distribution | None:
    if connect_ns is None:
        return None
    histogram = Histogram.latency()
    histogram.record_many(connect_ns)
    return Distribution.of(histogram.stats())


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return round(value, digits) if value is not None else None
