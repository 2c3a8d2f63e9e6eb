"""Metrics layer: ``.hlog`` interval logs read back, for the report and the merge of worker processes.

``report.files.HlogWriter`` writes them (HdrHistogram's log format 1.2); here each interval comes
back with its times relative to the log's own StartTime, so logs that share a time origin (a
level's worker processes) line up interval by interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadgen.metrics.histogram import SIGNIFICANT_DIGITS, without_cycle

LATENCY_HIGHEST_US = 3_600_000_000  # latencies are logged in µs, up to an hour


@dataclass(frozen=True, slots=True)
class Interval:
    start_s: float  # seconds after the log's StartTime
    end_s: float
    histogram: HdrHistogram


def read_intervals(path: Path, highest: int = LATENCY_HIGHEST_US) -> Iterator[Interval]:
    reader = HistogramLogReader(str(path), HdrHistogram(1, highest, SIGNIFICANT_DIGITS))
    while (interval := reader.get_next_interval_histogram()) is not None:
        # the reader adds the file's StartTime to each interval's own time
        start_s = round(interval.get_start_time_stamp() / 1000.0 - reader.base_time_sec, 3)
        end_s = round(interval.get_end_time_stamp() / 1000.0 - reader.base_time_sec, 3)
        yield Interval(start_s, end_s, without_cycle(interval))


def merged_intervals(paths: Iterable[Path], highest: int = LATENCY_HIGHEST_US) -> HdrHistogram:
    """Every interval of every file, added exactly."""
    merged = HdrHistogram(1, highest, SIGNIFICANT_DIGITS)
    for path in paths:
        for interval in read_intervals(path, highest):
            if interval.histogram.get_total_count():
                merged.add(interval.histogram)
    return merged
