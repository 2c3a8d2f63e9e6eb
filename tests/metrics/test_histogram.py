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
