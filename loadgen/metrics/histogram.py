"""Metrics layer: the one histogram type. Percentiles come only from here.

Wraps HdrHistogram (3 significant digits). Latencies are recorded in microseconds from 1 µs to
one hour; rates in thousandths. A value out of range is counted in ``out_of_range``, never
silently dropped; a value below the lowest unit (a 0 µs gap between chunks that arrived in the
same read) is recorded as 0, which HdrHistogram keeps exactly.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

SIGNIFICANT_DIGITS = 3
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


def without_cycle(hdr: HdrHistogram) -> HdrHistogram:
    """hdrh's histogram and its encoder point at each other, a reference cycle only the cyclic
    garbage collector frees; during a load that collector is held back (``quiet_garbage_collector``),
    so every closed interval's histograms piled up (about 1.5 MiB/s, 530 MiB over a million
    requests). The encoder's pointer back becomes a weak one: reference counting frees both the
    moment the histogram is dropped."""
    hdr.encoder.histogram = weakref.proxy(hdr)
    return hdr


class Histogram:
    """Records values in the caller's unit; ``unit_per_count`` of them make one recorded count.

    Latency: ``Histogram.latency()`` takes nanoseconds, records µs, reports ms.
    Rate: ``Histogram.rate()`` takes tokens/s (float), records thousandths, reports tokens/s.
    """

    def __init__(self, unit_per_count: float, display_per_count: float, highest_count: int) -> None:
        self._unit_per_count = unit_per_count
        self._display_per_count = display_per_count
        self._highest_count = highest_count
        self._hdr = without_cycle(HdrHistogram(1, highest_count, SIGNIFICANT_DIGITS))
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
        if count == 1:
            self._pending.append(value)  # settled with the others, in one vectorised step
            return
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
        """Adds the pending values to hdrh's counts array in one vectorised step (hdrh's own
        ``record_value`` is pure Python, about 3 µs a call), with hdrh's own bucket arithmetic, so
        the histogram is exactly what recording them one by one would have made."""
        pending, self._pending = self._pending, []
        values = np.asarray(pending, dtype=np.float64)
        negative = values < 0
        counted = np.rint(values[~negative] / self._unit_per_count).astype(np.int64)  # rint: as round() does
        layout = _layout(self._hdr)
        index = layout.index_of(counted)
        inside = index < layout.size
        self._out_of_range += int(negative.sum()) + int((~inside).sum())
        counted, index = counted[inside], index[inside]
        if not counted.size:
            return
        hdr = self._hdr
        counts = np.ctypeslib.as_array(hdr.counts)
        counts += np.bincount(index, minlength=layout.size).astype(counts.dtype)
        hdr.total_count += int(counted.size)
        hdr.min_value = min(hdr.min_value, int(counted.min()))
        hdr.max_value = max(hdr.max_value, int(counted.max()))

    def encode(self) -> str:
        """Compressed, exact (HdrHistogram's base64 encoding)."""
        return str(self.hdr.encode().decode("ascii"))

    def add_encoded(self, encoded: str, out_of_range: int = 0) -> None:
        """Merge a histogram encoded by ``encode`` (of the same kind), exactly."""
        self._out_of_range += out_of_range
        other = without_cycle(HdrHistogram.decode(encoded.encode("ascii")))
        if other.get_total_count():
            self.hdr.add(other)

    def state(self) -> dict[str, object]:
        """The histogram for another process (``add_state`` merges it there), exactly."""
        return {"encoded": self.encode(), "out_of_range": self.out_of_range}

    def add_state(self, state: Mapping[str, Any]) -> None:
        self.add_encoded(state["encoded"], state["out_of_range"])

    def add(self, other: Histogram) -> None:
        self._out_of_range += other.out_of_range
        if other.count:
            # hdrh's add() takes min(self, other) with an empty side reading as 0: skip empties.
            self.hdr.add(other.hdr)

    @property
    def count(self) -> int:
        return int(self.hdr.get_total_count())

    def percentile(self, percentile: float) -> float | None:
        if self.count == 0:
            return None
        return _percentiles(self.hdr, (percentile,))[percentile] * self._display_per_count

    def stats(self) -> Stats:
        hdr = self.hdr
        count = hdr.get_total_count()
        if count == 0:
            return Stats(0, None, None, None, None, None, None, None, None)
        scale = self._display_per_count
        values = _percentiles(hdr, PERCENTILES)
        return Stats(
            count=count,
            mean=round(_mean(hdr) * scale, 6),
            min=round(hdr.get_min_value() * scale, 6),
            p50=round(values[50.0] * scale, 6),
            p90=round(values[90.0] * scale, 6),
            p95=round(values[95.0] * scale, 6),
            p99=round(values[99.0] * scale, 6),
            p99_9=round(values[99.9] * scale, 6),
            max=round(hdr.get_max_value() * scale, 6),
        )


class _Layout:
    """hdrh's bucket arithmetic for one histogram shape, as arrays over the counts index: the
    lowest, highest and median value each slot stands for (``get_value_from_index``,
    ``get_highest_equivalent_value``, ``_hdr_median_equiv_value``), so percentiles and means read
    the counts array with numpy and give hdrh's exact answers."""

    def __init__(self, hdr: HdrHistogram) -> None:
        if hdr.unit_magnitude != 0:
            raise ValueError("loadgen's histograms have a lowest trackable value of 1")
        self.size = hdr.counts_len
        self._half_magnitude = hdr.sub_bucket_half_count_magnitude
        self._half = hdr.sub_bucket_half_count
        self._mask = hdr.sub_bucket_mask
        index = np.arange(self.size, dtype=np.int64)
        bucket = (index >> self._half_magnitude) - 1
        sub_bucket = (index & (self._half - 1)) + self._half
        first = bucket < 0
        sub_bucket[first] -= self._half
        bucket[first] = 0
        self.lowest = sub_bucket << bucket
        width = np.left_shift(1, bucket)
        self.highest = self.lowest + width - 1
        self.median = self.lowest + (width >> 1)

    def index_of(self, values: np.ndarray) -> np.ndarray:
        """``_counts_index_for`` of each value (values ≥ 0)."""
        _, bit_length = np.frexp((values | self._mask).astype(np.float64))
        bucket = bit_length.astype(np.int64) - (self._half_magnitude + 1)
        index: np.ndarray = ((bucket + 1) << self._half_magnitude) + ((values >> bucket) - self._half)
        return index


_LAYOUTS: dict[tuple[int, int], _Layout] = {}


def _layout(hdr: HdrHistogram) -> _Layout:
    key = (hdr.counts_len, hdr.sub_bucket_half_count_magnitude)
    layout = _LAYOUTS.get(key)
    if layout is None:
        layout = _LAYOUTS[key] = _Layout(hdr)
    return layout


def _percentiles(hdr: HdrHistogram, percentiles: Iterable[float]) -> dict[float, int]:
    """``get_value_at_percentile`` for each percentile (hdrh's rounding of the target count)."""
    layout = _layout(hdr)
    cumulative = np.cumsum(np.ctypeslib.as_array(hdr.counts))
    total = hdr.total_count
    result = {}
    for percentile in percentiles:
        target = max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)
        index = min(int(np.searchsorted(cumulative, target, side="left")), layout.size - 1)
        result[percentile] = int(layout.highest[index] if percentile else layout.lowest[index])
    return result


def _mean(hdr: HdrHistogram) -> float:
    """``get_mean_value``: each count at its slot's median value (summed exactly, in Python ints)."""
    counts = np.ctypeslib.as_array(hdr.counts)
    recorded = np.flatnonzero(counts)
    total = sum(int(c) * int(m) for c, m in zip(counts[recorded].tolist(), _layout(hdr).median[recorded].tolist(),
                                                strict=True))  # fmt: skip
    return float(total) / hdr.total_count if hdr.total_count else 0.0
