import pytest

from loadgen.metrics import request_metrics as rm
from loadgen.records import TokenMethod
from tests.records import MS, record


def test_ttft_e2e_tpot_from_intended_send() -> None:
    # intended at 0, actually sent at 5 ms (client lag), chunks at 50, 60, 70, 80, end 81
    r = record(intended_ms=0, sent_ms=5, chunks_ms=(50, 60, 70, 80), end_ms=81)
    assert rm.ttft_ns(r) == 50 * MS
    assert rm.e2e_ns(r) == 81 * MS
    assert rm.schedule_lag_ns(r) == 5 * MS
    assert rm.tpot_ns(r) == pytest.approx((81 - 50) * MS / 3)


def test_itl_one_token_per_chunk() -> None:
    r = record(chunks_ms=(50, 60, 75))
    assert list(rm.itl_samples_ns(r)) == [(10 * MS, 1), (15 * MS, 1)]
    assert rm.itl_split(r) is rm.ItlSplit.ONE_PER_CHUNK
    assert list(rm.chunk_gaps_ns(r)) == [10 * MS, 15 * MS]


def test_itl_divides_gap_among_tokens_the_server_reported() -> None:
    # speculative decoding: 1, then 3 tokens 12 ms later, then 2 tokens 8 ms later
    r = record(chunks_ms=(50, 62, 70), chunk_tokens=[1, 3, 2], method=TokenMethod.SERVER_TOKENS)
    assert list(rm.itl_samples_ns(r)) == [(4 * MS, 3), (4 * MS, 2)]
    assert rm.tpot_ns(r) == pytest.approx(20 * MS / 5)


def test_itl_even_split_when_usage_exceeds_chunks() -> None:
    r = record(chunks_ms=(10, 20, 30), output_tokens=6)
    assert rm.itl_split(r) is rm.ItlSplit.EVEN_SPLIT
    # 5 tokens after the first over 2 gaps: 2 and 3, so ITL's mean is TPOT's (20 ms / 5)
    assert list(rm.itl_samples_ns(r)) == [(5 * MS, 2), (pytest.approx(10 * MS / 3), 3)]
    assert rm.tpot_ns(r) == pytest.approx(4 * MS)


def test_itl_even_split_adds_up_when_tokens_do_not_divide_evenly() -> None:
    # vLLM: 64 tokens in 46 chunks (some chunks carry two): rounding 64/46 to 1 made raw gaps per-token times
    r = record(chunks_ms=tuple(float(10 * i) for i in range(46)), end_ms=450, output_tokens=64)
    samples = list(rm.itl_samples_ns(r))
    assert sum(tokens for _, tokens in samples) == 63
    assert {tokens for _, tokens in samples} == {1, 2}
    mean = sum(value * tokens for value, tokens in samples) / 63
    assert mean == pytest.approx(rm.tpot_ns(r))


def test_itl_assumed_one_per_chunk_without_token_counts() -> None:
    r = record(chunks_ms=(10, 20, 30), method=TokenMethod.CONTENT_CHUNKS)
    assert rm.itl_split(r) is rm.ItlSplit.ASSUMED_ONE


def test_single_token_has_no_tpot_or_itl() -> None:
    r = record(chunks_ms=(10,), end_ms=11)
    assert rm.tpot_ns(r) is None
    assert list(rm.itl_samples_ns(r)) == []


def test_output_tokens_per_s() -> None:
    r = record(chunks_ms=(100, 200, 300, 400), end_ms=500)
    assert rm.output_tokens_per_s(r) == pytest.approx(4 / 0.5)


def test_slo_checks() -> None:
    r = record(chunks_ms=(50, 60, 70), end_ms=70)
    assert rm.meets_slo(r, "ttft", 50 * MS)
    assert not rm.meets_slo(r, "ttft", 49 * MS)
    assert rm.meets_slo(r, "tpot", 10 * MS)
    assert not rm.meets_slo(r, "tpot", 9 * MS)
    assert rm.meets_slo(r, "itl", 10 * MS)
    no_tokens = record(chunks_ms=())
    assert not rm.meets_slo(no_tokens, "ttft", 10**12)
