"""Metrics layer: the aggregator, a record listener that keeps counts and HDR histograms.

Warm-up records are counted but kept out of every figure. Histograms are recorded per interval
(by the record's end time); at each interval boundary the interval's histograms are added to the
run totals and handed to ``on_interval`` (the report layer writes them as ``.hlog`` lines).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from loadgen.config import SloTarget
from loadgen.errors import ErrorKind
from loadgen.metrics import request_metrics as rm
from loadgen.metrics.histogram import Histogram
from loadgen.metrics.server_account import ServerTally
from loadgen.records import RequestRecord, TokenMethod

LATENCY_METRICS = ("ttft", "ttfot", "itl", "itl_chunk", "tpot", "e2e", "schedule_lag", "read_lag", "connect")
HISTOGRAM_NAMES = (*LATENCY_METRICS, "output_tokens_per_s", "confidence")

IntervalSink = Callable[[int, int, dict[str, Histogram]], None]


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    completed: int
    failed: int
    warmup: int
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    output_tokens_per_s: float | None


class Aggregator:
    def __init__(
        self,
        slo: tuple[SloTarget, ...] = (),
        interval_ns: int = 1_000_000_000,
        on_interval: IntervalSink | None = None,
    ) -> None:
        self._per_request_slo = tuple(target for target in slo if target.per_request)
        self._interval_ns = interval_ns
        self._on_interval = on_interval
        self.totals = {name: self.new_histogram(name) for name in HISTOGRAM_NAMES}
        self._interval = {name: self.new_histogram(name) for name in HISTOGRAM_NAMES}
        self._interval_index: int | None = None
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.warmup = 0
        self.good = 0
        self.answers_checked = 0
        self.answers_correct = 0
        self.errors_by_kind: Counter[str] = Counter()
        self.first_error_by_kind: dict[str, str] = {}
        self.output_tokens = 0
        self.input_tokens = 0
        self.gaps = 0  # between consecutive content chunks of a request
        self.zero_gaps = 0  # of those, chunks that arrived in the same read
        self.cached_input_tokens = 0
        self.cached_input_known = 0  # requests whose usage said how much of the prompt was cached
        self.reasoning_tokens = 0
        self.reasoning_requests = 0  # requests whose stream carried reasoning before the answer
        self.turns: dict[int, TurnTally] = {}  # multi-turn sessions: figures by turn (1-based)
        self.server = ServerTally()  # the server's own account of the completed requests, where it gave one
        self.input_tokens_known = 0
        self.output_methods: Counter[str] = Counter()
        self.input_methods: Counter[str] = Counter()
        self.itl_splits: Counter[str] = Counter()
        self.finish_reasons: Counter[str] = Counter()
        self.method_pairs: dict[str, list[int]] = {}
        self.window_start_ns: int | None = None
        self.window_end_ns: int | None = None
        self.arrivals = 0  # measured requests due to be sent (cancelled ones too): the offered load
        self.first_intended_ns: int | None = None
        self.last_intended_ns: int | None = None

    @staticmethod
    def new_histogram(name: str) -> Histogram:
        """The histogram kind of a metric: rates and confidence in thousandths, latencies in µs."""
        return Histogram.rate() if name in ("output_tokens_per_s", "confidence") else Histogram.latency()

    def on_record(self, record: RequestRecord) -> None:
        if record.warmup:
            self.warmup += 1
            return
        self._count_arrival(record.intended_ns)
        kind = record.error_kind
        if kind is ErrorKind.CANCELLED:
            self.cancelled += 1
            return
        self._roll_interval(record.end_ns if record.end_ns is not None else record.intended_ns)
        self._widen_window(record)
        histograms = self._interval
        lag = rm.schedule_lag_ns(record)
        if lag is not None:
            histograms["schedule_lag"].record(lag)
        if record.read_lag_ns is not None:
            histograms["read_lag"].record(record.read_lag_ns)
        if record.connect_ns is not None:
            histograms["connect"].record(record.connect_ns)
        if kind is not None:
            self.failed += 1
            self.errors_by_kind[kind.value] += 1
            self.first_error_by_kind.setdefault(kind.value, record.error or "")
            return
        self.completed += 1
        self._record_latencies(record, histograms)
        self._count_tokens(record)
        if record.turn is not None:
            self._count_turn(record.turn, record)
        if record.server_timings:
            self.server.count(record, record.server_timings)
        if self._meets_slo(record):
            self.good += 1

    def _record_latencies(self, record: RequestRecord, histograms: dict[str, Histogram]) -> None:
        ttft = rm.ttft_ns(record)
        if ttft is not None:
            histograms["ttft"].record(ttft)
        ttfot = rm.ttfot_ns(record)
        if ttfot is not None:
            histograms["ttfot"].record(ttfot)
        e2e = rm.e2e_ns(record)
        if e2e is not None:
            histograms["e2e"].record(e2e)
        tpot = rm.tpot_ns(record)
        if tpot is not None:
            histograms["tpot"].record(tpot)
        itl = histograms["itl"]
        chunks = record.chunk_ns
        gaps = [later - earlier for earlier, later in pairwise(chunks)]
        if record.chunk_tokens is None and rm.itl_split(record) is not rm.ItlSplit.EVEN_SPLIT:
            itl.record_many(gaps)  # one token per chunk: ITL samples are the gaps
        else:
            for gap_per_token, tokens in rm.itl_samples_ns(record):
                itl.record(gap_per_token, tokens)
        histograms["itl_chunk"].record_many(gaps)
        self.gaps += len(gaps)
        self.zero_gaps += gaps.count(0)
        rate = rm.output_tokens_per_s(record)
        if rate is not None:
            histograms["output_tokens_per_s"].record(rate)
        if len(record.chunk_ns) >= 2:
            self.itl_splits[rm.itl_split(record).value] += 1
        if record.mean_logprob is not None:
            # confidence: the geometric mean of the output tokens' probabilities, exp(mean log-prob)
            histograms["confidence"].record(math.exp(record.mean_logprob))

    def _count_tokens(self, record: RequestRecord) -> None:
        self.output_methods[record.output_token_method.value] += 1
        self.input_methods[record.input_token_method.value] += 1
        if record.output_tokens is not None:
            self.output_tokens += record.output_tokens
        count_prompt(self, record)
        if record.reasoning_tokens is not None:
            self.reasoning_tokens += record.reasoning_tokens
            self.reasoning_requests += 1
        if record.finish_reason:
            self.finish_reasons[record.finish_reason] += 1
        if record.correct is not None:
            self.answers_checked += 1
            self.answers_correct += record.correct
        usage = record.usage_output_tokens
        alternatives = {TokenMethod.CONTENT_CHUNKS.value: len(record.chunk_ns)}
        if record.chunk_tokens is not None:
            alternatives[TokenMethod.SERVER_TOKENS.value] = sum(record.chunk_tokens)
        if record.tokenizer_output_tokens is not None:
            alternatives[TokenMethod.TOKENIZER.value] = record.tokenizer_output_tokens
        if usage is not None:
            for method, value in alternatives.items():
                pair = self.method_pairs.setdefault(method, [0, 0, 0])
                pair[0] += 1
                pair[1] += usage
                pair[2] += value

    def _count_turn(self, turn: int, record: RequestRecord) -> None:
        tally = self.turns.get(turn)
        if tally is None:
            tally = self.turns[turn] = TurnTally(Histogram.latency())
        tally.requests += 1
        ttft = rm.ttft_ns(record)
        if ttft is not None:
            tally.ttft.record(ttft)
        count_prompt(tally, record)

    def _meets_slo(self, record: RequestRecord) -> bool:
        return all(rm.meets_slo(record, target.metric, target.threshold_ns) for target in self._per_request_slo)

    def _count_arrival(self, intended_ns: int) -> None:
        self.arrivals += 1
        if self.first_intended_ns is None or intended_ns < self.first_intended_ns:
            self.first_intended_ns = intended_ns
        if self.last_intended_ns is None or intended_ns > self.last_intended_ns:
            self.last_intended_ns = intended_ns

    @property
    def arrivals_per_s(self) -> float | None:
        """Requests offered per second, as they were due (not as set): between the first and
        the last intended send, (arrivals − 1) gaps."""
        if self.first_intended_ns is None or self.last_intended_ns is None or self.arrivals < 2:
            return None
        span = self.last_intended_ns - self.first_intended_ns
        return (self.arrivals - 1) / (span / 1e9) if span > 0 else None

    def _widen_window(self, record: RequestRecord) -> None:
        start = record.intended_ns
        end = record.end_ns if record.end_ns is not None else start
        if self.window_start_ns is None or start < self.window_start_ns:
            self.window_start_ns = start
        if self.window_end_ns is None or end > self.window_end_ns:
            self.window_end_ns = end

    def _roll_interval(self, t_ns: int) -> None:
        index = t_ns // self._interval_ns
        if self._interval_index is None:
            self._interval_index = index
        elif index > self._interval_index:
            self.flush()
            self._interval_index = index

    def flush(self) -> None:
        """Close the current interval: add it to the totals and hand it to ``on_interval``."""
        if self._interval_index is None:
            return
        start_ns = self._interval_index * self._interval_ns
        if self._on_interval is not None and any(h.count for h in self._interval.values()):
            self._on_interval(start_ns, start_ns + self._interval_ns, self._interval)
        for name, histogram in self._interval.items():
            self.totals[name].add(histogram)
        self._interval = {name: self.new_histogram(name) for name in HISTOGRAM_NAMES}

    def histogram(self, name: str) -> Histogram:
        """Totals so far including the open interval (a copy)."""
        merged = self.totals[name].empty_copy()
        merged.add(self.totals[name])
        merged.add(self._interval[name])
        return merged

    @property
    def window_s(self) -> float | None:
        if self.window_start_ns is None or self.window_end_ns is None:
            return None
        span = self.window_end_ns - self.window_start_ns
        return span / 1e9 if span > 0 else None

    def snapshot(self) -> LiveSnapshot:
        ttft = self.histogram("ttft")
        window = self.window_s
        return LiveSnapshot(
            completed=self.completed,
            failed=self.failed,
            warmup=self.warmup,
            ttft_p50_ms=ttft.percentile(50),
            ttft_p99_ms=ttft.percentile(99),
            output_tokens_per_s=self.output_tokens / window if window else None,
        )


COUNTERS = (
    "completed",
    "failed",
    "cancelled",
    "warmup",
    "good",
    "output_tokens",
    "input_tokens",
    "input_tokens_known",
    "cached_input_tokens",
    "cached_input_known",
    "reasoning_tokens",
    "reasoning_requests",
    "gaps",
    "zero_gaps",
    "answers_checked",
    "answers_correct",
    "arrivals",
)


@dataclass(slots=True)
class TurnTally:
    """One turn's figures over a level's sessions: how fast it started, how long its prompt was
    (the history grows with the turn) and how much of it the server had cached."""

    ttft: Histogram
    requests: int = 0
    input_tokens: int = 0
    input_tokens_known: int = 0
    cached_input_tokens: int = 0
    cached_input_known: int = 0


TURN_COUNTERS = ("requests", "input_tokens", "input_tokens_known", "cached_input_tokens", "cached_input_known")


def count_prompt(tally: Aggregator | TurnTally, record: RequestRecord) -> None:
    """A request's prompt tokens, and those its server served from the prefix cache, where it said."""
    if record.input_tokens is not None:
        tally.input_tokens += record.input_tokens
        tally.input_tokens_known += 1
    if record.cached_input_tokens is not None:
        tally.cached_input_tokens += record.cached_input_tokens
        tally.cached_input_known += 1


COUNTER_MAPS = ("errors_by_kind", "output_methods", "input_methods", "itl_splits", "finish_reasons")


def aggregator_state(aggregator: Aggregator, close_interval: bool = True) -> dict[str, object]:
    """Everything the summary needs, exactly: counters and compressed histograms (for merging
    the aggregators of several worker processes). ``close_interval`` False: a snapshot while the
    run goes on, leaving the open interval (and the interval logs) as they are."""
    if close_interval:
        aggregator.flush()
    histograms = (
        aggregator.totals if close_interval else {name: aggregator.histogram(name) for name in aggregator.totals}
    )
    return {
        **{name: getattr(aggregator, name) for name in COUNTERS},
        **{name: dict(getattr(aggregator, name)) for name in COUNTER_MAPS},
        "first_error_by_kind": aggregator.first_error_by_kind,
        "method_pairs": aggregator.method_pairs,
        "window_start_ns": aggregator.window_start_ns,
        "window_end_ns": aggregator.window_end_ns,
        "first_intended_ns": aggregator.first_intended_ns,
        "last_intended_ns": aggregator.last_intended_ns,
        "histograms": {name: h.state() for name, h in histograms.items()},
        "server": aggregator.server.state(),
        "turns": {str(turn): {**{name: getattr(tally, name) for name in TURN_COUNTERS}, "ttft": tally.ttft.state()}
                  for turn, tally in aggregator.turns.items()},
    }  # fmt: skip


def merge_state(aggregator: Aggregator, state: dict[str, Any]) -> None:
    for name in COUNTERS:
        setattr(aggregator, name, getattr(aggregator, name) + state.get(name, 0))
    for name in COUNTER_MAPS:
        getattr(aggregator, name).update(state.get(name, {}))
    for kind, message in state["first_error_by_kind"].items():
        aggregator.first_error_by_kind.setdefault(kind, message)
    for method, (requests, usage, other) in state["method_pairs"].items():
        pair = aggregator.method_pairs.setdefault(method, [0, 0, 0])
        pair[0], pair[1], pair[2] = pair[0] + requests, pair[1] + usage, pair[2] + other
    edges = (("window_start_ns", min), ("window_end_ns", max), ("first_intended_ns", min), ("last_intended_ns", max))
    for edge, pick in edges:
        mine, theirs = getattr(aggregator, edge), state.get(edge)
        if theirs is not None:
            setattr(aggregator, edge, theirs if mine is None else pick(mine, theirs))
    for name, histogram in state["histograms"].items():
        aggregator.totals[name].add_state(histogram)
    aggregator.server.merge(state.get("server", {}))
    for turn, figures in state.get("turns", {}).items():
        tally = aggregator.turns.setdefault(int(turn), TurnTally(Histogram.latency()))
        for name in TURN_COUNTERS:
            setattr(tally, name, getattr(tally, name) + figures[name])
        tally.ttft.add_state(figures["ttft"])
