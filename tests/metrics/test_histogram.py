import pytest

from loadgen.metrics.histogram import Histogram

MS = 1_000_000


def test_percentiles_of_a_known_uniform_distribution() -> None:
    histogram = Histogram.latency()
    for value_ms in range(1, 1001):
        histogram.record(value_ms * MS)
    stats = histogram.stats()
    assert stats.count == 1000
    assert stats.min == pytest.approx(1.0, rel=1e-3)
    assert stats.p50 == pytest.approx(500, rel=2e-3)
    assert stats.p90 == pytest.approx(900, rel=2e-3)
    assert stats.p99 == pytest.approx(990, rel=2e-3)
    assert stats.max == pytest.approx(1000, rel=2e-3)
    assert stats.mean == pytest.approx(500.5, rel=2e-3)


def test_microsecond_resolution_and_zero() -> None:
    histogram = Histogram.latency()
    histogram.record(0)
    histogram.record(1_499)  # rounds to 1 µs
    histogram.record(2_500)  # rounds to 2 µs (banker's) or 3
    stats = histogram.stats()
    assert stats.min == 0
    assert stats.count == 3
    assert stats.max in (0.002, 0.003)


def test_out_of_range_values_are_counted_not_dropped_silently() -> None:
    histogram = Histogram.latency()
    histogram.record(-5)
    histogram.record(10 * 3600 * 10**9)  # ten hours
    assert histogram.out_of_range == 2
    assert histogram.count == 0
    assert histogram.stats().p50 is None


def test_weighted_record_and_merge() -> None:
    first, second = Histogram.latency(), Histogram.latency()
    first.record(10 * MS, count=3)
    second.record(20 * MS, count=1)
    first.add(second)
    assert first.count == 4
    assert first.percentile(50) == pytest.approx(10, rel=1e-3)
    assert first.percentile(100) == pytest.approx(20, rel=1e-3)


def test_rate_histogram_keeps_thousandths() -> None:
    histogram = Histogram.rate()
    histogram.record(123.456)
    assert histogram.stats().p50 == pytest.approx(123.456, rel=1e-3)


def test_merging_an_empty_histogram_keeps_the_minimum() -> None:
    histogram = Histogram.latency()
    histogram.record(50 * MS)
    histogram.add(Histogram.latency())
    assert histogram.stats().min == pytest.approx(50, rel=1e-3)


def test_batched_recording_and_numpy_reads_match_hdrh_value_by_value() -> None:
    """record_many settles through numpy; stats read the counts with numpy: both must give what
    hdrh gives recording and reading one value at a time."""
    import random

    from hdrh.histogram import HdrHistogram

    from loadgen.metrics.histogram import PERCENTILES, _mean, _percentiles

    rng = random.Random(7)
    values = [
        rng.choice([rng.randint(0, 5000), rng.randint(0, 10**9), rng.randint(0, 10**12), -5, 4 * 10**15,
                    rng.random() * 1e7, 2500.5, 3500.0])
        for _ in range(20_000)
    ]  # fmt: skip
    batched = Histogram.latency()
    batched.record_many(values)
    reference = HdrHistogram(1, 3_600_000_000, 3)
    missed = sum(1 for v in values if v < 0 or not reference.record_value(round(v / 1000)))
    assert batched.out_of_range == missed
    assert batched.hdr.encode() == reference.encode()
    assert _mean(reference) == reference.get_mean_value()
    wanted = [*PERCENTILES, 0.0, 12.5, 100.0]
    assert _percentiles(reference, wanted) == {p: reference.get_value_at_percentile(p) for p in wanted}


def test_a_dropped_histogram_is_freed_without_the_cycle_collector() -> None:
    """hdrh's histogram and its encoder referred to each other: each closed interval waited for a
    full collection, which a load holds back (RSS grew 63 → 530 MiB over a million requests)."""
    import gc
    import weakref

    from loadgen.metrics.histogram import Histogram

    enabled = gc.isenabled()
    gc.disable()
    try:
        histogram = Histogram.latency()
        histogram.record(1_000_000)
        assert histogram.encode()  # the encoder still works through its weak pointer back
        copy = Histogram.latency()
        copy.add_encoded(histogram.encode())
        references = [weakref.ref(histogram.hdr), weakref.ref(copy.hdr)]
        del histogram, copy
        assert all(reference() is None for reference in references)
    finally:
        if enabled:
            gc.enable()
