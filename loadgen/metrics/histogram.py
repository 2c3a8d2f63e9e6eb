"""Metrics layer: the one histogram type. Percentiles come only from here.

Wraps HdrHistogram (3 significant digits). Latencies are recorded in microseconds from 1 µs to
one hour; rates in thousandths. A value out of range is counted in ``out_of_range``, never
silently dropped; a value below the lowest unit (a 0 µs gap between chunks that arrived in the
same read) is recorded as 0, which HdrHistogram keeps exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

SIGNIFICANT_DIGITS = 3
SUB_BUCKET_BITS = 11  # 3 significant digits: 2,048 sub-buckets, so values below 2,048 are exact
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True, slots=True)
class Stats:
    """Distribution summary in display units (ms for latencies, tokens/s for rates)."""

    count: int
    mean: float | None
    min: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    p99_9: float | None
    max: float | None

    def to_json_dict(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "mean": self.mean,
            "min": self.min,
            "p50": self.p50,
            "p90": self.p90,
            "p95": self.p95,
            "p99": self.p99,
            "p99_9": self.p99_9,
            "max": self.max,
        }


class Histogram:
    """Records values in the caller's unit; ``unit_per_count`` of them make one recorded count.

    Latency: ``Histogram.latency()`` takes nanoseconds, records µs, reports ms.
    Rate: ``Histogram.rate()`` takes tokens/s (float), records thousandths, reports tokens/s.
    """

    def __init__(self, unit_per_count: float, display_per_count: float, highest_count: int) -> None:
        self._unit_per_count = unit_per_count
        self._display_per_count = display_per_count
        self._highest_count = highest_count
        self._hdr = HdrHistogram(1, highest_count, SIGNIFICANT_DIGITS)
        self._pending: list[float] = []
        self._out_of_range = 0

    @classmethod
    def latency(cls) -> Histogram:
        return cls(unit_per_count=1_000, display_per_count=0.001, highest_count=3_600_000_000)

    @classmethod
    def rate(cls) -> Histogram:
        return cls(unit_per_count=0.001, display_per_count=0.001, highest_count=10_000_000_000)

    @property
    def highest_count(self) -> int:
        return self._highest_count

    def empty_copy(self) -> Histogram:
        return Histogram(self._unit_per_count, self._display_per_count, self._highest_count)

    def record(self, value: float, count: int = 1) -> None:
        if value < 0 or not self._hdr.record_value(round(value / self._unit_per_count), count):
            self._out_of_range += count

    def record_many(self, values: Iterable[float]) -> None:
        """``record`` for many values at once (the per-chunk hot path): they are kept as they are
        and go into the histogram, grouped by bucket, when it is next read."""
        self._pending.extend(values)

    @property
    def out_of_range(self) -> int:
        """Values that could not be recorded (negative, or above the highest trackable)."""
        if self._pending:
            self._settle()
        return self._out_of_range

    @property
    def hdr(self) -> HdrHistogram:
        """The HdrHistogram itself, with every recorded value in it."""
        if self._pending:
            self._settle()
        return self._hdr

    def _settle(self) -> None:
        """Records the pending values, one ``record_value`` per bucket instead of per value (hdrh's
        is pure Python, about 3 µs a call). Each value is replaced by the lowest value of its
        bucket, which hdrh counts in the same place, so every figure read back is the same."""
        pending, self._pending = self._pending, []
        values = np.asarray(pending, dtype=np.float64)
        negative = values < 0
        missed = int(negative.sum())
        counted = np.rint(values[~negative] / self._unit_per_count).astype(np.int64)  # rint: as round() does
        _, bit_length = np.frexp(counted.astype(np.float64))
        shift = np.maximum(bit_length - SUB_BUCKET_BITS, 0)
        buckets, counts = np.unique((counted >> shift) << shift, return_counts=True)
        record_value = self._hdr.record_value
        for bucket, count in zip(buckets.tolist(), counts.tolist(), strict=True):
            if not record_value(bucket, count):
                missed += count
        self._out_of_range += missed

    def encode(self) -> str:
        """Compressed, exact (HdrHistogram's base64 encoding)."""
        return self.hdr.encode().decode("ascii")

    def add_encoded(self, encoded: str, out_of_range: int = 0) -> None:
        """Merge a histogram encoded by ``encode`` (of the same kind), exactly."""
        self._out_of_range += out_of_range
        other = HdrHistogram.decode(encoded.encode("ascii"))
        if other.get_total_count():
            self.hdr.add(other)

    def add(self, other: Histogram) -> None:
        self._out_of_range += other.out_of_range
        if other.count:
            # hdrh's add() takes min(self, other) with an empty side reading as 0: skip empties.
            self.hdr.add(other.hdr)

    @property
    def count(self) -> int:
        return self.hdr.get_total_count()

    def percentile(self, percentile: float) -> float | None:
        if self.count == 0:
            return None
        return self.hdr.get_value_at_percentile(percentile) * self._display_per_count

    def stats(self) -> Stats:
        hdr = self.hdr
        count = hdr.get_total_count()
        if count == 0:
            return Stats(0, None, None, None, None, None, None, None, None)
        scale = self._display_per_count
        values = hdr.get_percentile_to_value_dict(list(PERCENTILES))
        return Stats(
            count=count,
            mean=round(hdr.get_mean_value() * scale, 6),
            min=round(hdr.get_min_value() * scale, 6),
            p50=round(values[50.0] * scale, 6),
            p90=round(values[90.0] * scale, 6),
            p95=round(values[95.0] * scale, 6),
            p99=round(values[99.0] * scale, 6),
            p99_9=round(values[99.9] * scale, 6),
            max=round(hdr.get_max_value() * scale, 6),
        )
