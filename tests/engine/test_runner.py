import itertools
import time

import pytest

from loadgen.config import Arrival, LoadConfig, LoadMode
from loadgen.engine.runner import StopReason
from loadgen.errors import ErrorKind
from loadgen.transport.memory import ScriptedResponse
from tests.engine.conftest import make_context, run_load, sse_stream

MS = 1_000_000


def test_closed_loop_issues_exactly_warmup_plus_requests() -> None:
    context = make_context(lambda request: sse_stream(0.002, 0.001, 3))
    outcome, records = run_load(LoadConfig(concurrency=4, requests=20, warmup_requests=4), context)
    assert outcome.stop_reason is StopReason.COMPLETED
    assert len(records) == 24
    assert sum(record.warmup for record in records) == 4
    assert sorted(record.index for record in records) == list(range(24))
    assert all(record.ok for record in records)


def test_closed_loop_keeps_concurrency_users_in_flight() -> None:
    context = make_context(lambda request: sse_stream(0.020, 0.0, 1))
    _, records = run_load(LoadConfig(concurrency=5, requests=20), context)
    intervals = sorted((r.sent_ns, r.end_ns) for r in records)
    peak = max(sum(1 for start, end in intervals if start <= t < end) for t, _ in intervals)
    assert peak == 5


def test_duration_stops_issuing() -> None:
    context = make_context(lambda request: sse_stream(0.010, 0.0, 1))
    started = time.perf_counter()
    outcome, records = run_load(LoadConfig(concurrency=2, duration_s=0.3), context)
    assert time.perf_counter() - started < 1.0
    assert outcome.stop_reason is StopReason.COMPLETED
    assert 20 <= len(records) <= 70  # ~2 users × 0.3 s / 10 ms


@pytest.mark.parametrize("mode", [LoadMode.CLOSED, LoadMode.OPEN])
def test_duration_bounds_the_run_when_no_request_ends(mode: LoadMode) -> None:
    """Streams that never end: the duration and the drain timeout still end the run on time, and
    the requests cut off are published as cancelled."""
    endless = ScriptedResponse(pieces=tuple((0.05, _endless_chunk()) for _ in range(2000)))
    context = make_context(lambda request: endless)
    load = LoadConfig(mode=mode, concurrency=2, rate_rps=4, duration_s=0.3, drain_timeout_s=0.2, warmup_requests=0)
    started = time.perf_counter()
    outcome, records = run_load(load, context)
    assert time.perf_counter() - started < 1.5
    assert outcome.drain_cancelled >= 1
    assert records and all(record.error_kind is ErrorKind.CANCELLED for record in records)


def _endless_chunk() -> bytes:
    return b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n'


def test_open_loop_intended_times_follow_the_schedule() -> None:
    context = make_context(lambda request: sse_stream(0.005, 0.0, 1))
    load = LoadConfig(mode=LoadMode.OPEN, rate_rps=200, arrival=Arrival.CONSTANT, requests=40)
    _, records = run_load(load, context)
    intended = sorted(record.intended_ns for record in records)
    gaps = [b - a for a, b in itertools.pairwise(intended)]
    assert gaps == [5 * MS] * 39
    lags = [record.sent_ns - record.intended_ns for record in records]
    assert min(lags) >= 0  # never sent before its intended time (event-loop timers can fire early)
    # sent in the order they were intended (how late each left is the truth benchmark's to measure)
    assert [r.index for r in sorted(records, key=lambda r: r.sent_ns)] == [
        r.index for r in sorted(records, key=lambda r: r.intended_ns)
    ]


def test_open_loop_latency_includes_waiting_for_an_inflight_slot() -> None:
    # one slot, 50 ms per request, arrivals every 10 ms: later requests wait, and that wait counts
    context = make_context(lambda request: sse_stream(0.050, 0.0, 1))
    load = LoadConfig(mode=LoadMode.OPEN, rate_rps=100, arrival=Arrival.CONSTANT, requests=5, max_inflight=1)
    _, records = run_load(load, context)
    records.sort(key=lambda record: record.index)
    ttfts_ms = [(record.first_token_ns - record.intended_ns) / MS for record in records]
    waits_ms = [(record.sent_ns - record.intended_ns) / MS for record in records]
    # bounds that hold however busy the machine: each request takes at least 50 ms, one at a time
    assert ttfts_ms[0] >= 50
    assert waits_ms[4] >= 4 * 50 - 4 * 10  # queued behind four others: 160 ms at least, and it counts
    assert ttfts_ms[4] >= waits_ms[4] + 50


def test_stop_cancels_in_flight_requests_and_keeps_their_records() -> None:
    context = make_context(lambda request: sse_stream(0.010, 0.05, 40))
    outcome, records = run_load(LoadConfig(concurrency=3, requests=100), context, stop_after_s=0.2)
    assert outcome.stop_reason is StopReason.INTERRUPTED
    assert outcome.partial
    cancelled = [record for record in records if record.error_kind is ErrorKind.CANCELLED]
    assert len(cancelled) == 3
    assert all(record.chunk_ns for record in cancelled)  # what arrived before the stop is kept


def test_drain_timeout_cancels_stragglers() -> None:
    slow_after_first = iter([sse_stream(0.001, 0.0, 1)] + [sse_stream(5.0, 0.0, 1)] * 10)
    context = make_context(lambda request: next(slow_after_first))
    load = LoadConfig(concurrency=2, requests=2, drain_timeout_s=0.1)
    started = time.perf_counter()
    outcome, records = run_load(load, context)
    assert time.perf_counter() - started < 2.0
    assert outcome.stop_reason is StopReason.COMPLETED
    assert sum(record.error_kind is ErrorKind.CANCELLED for record in records) >= 1


def test_worker_bug_is_raised_not_swallowed() -> None:
    def broken_handler(request):  # type: ignore[no-untyped-def]
        raise RuntimeError("bug in a handler")

    with pytest.raises(RuntimeError, match="bug in a handler"):
        run_load(LoadConfig(concurrency=1, requests=1), make_context(broken_handler))


def test_ramp_up_spreads_user_starts() -> None:
    context = make_context(lambda request: sse_stream(0.3, 0.0, 1))  # each user takes one request
    _, records = run_load(LoadConfig(concurrency=4, requests=4, ramp_up_s=0.2), context)
    first_sends = sorted(record.sent_ns for record in records)
    spacing_ms = [(b - a) / MS for a, b in itertools.pairwise(first_sends)]
    assert all(40 <= gap <= 80 for gap in spacing_ms), spacing_ms
