"""Shared bottom layer: the one place loadgen reads time.

All measurements are integer nanoseconds from ``time.perf_counter_ns`` (monotonic, highest
resolution). Wall-clock time is read once per run to label results. Tests inject ``FakeClock``.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int: ...


class MonotonicClock:
    """``perf_counter_ns``: monotonic, unaffected by wall-clock steps."""

    now_ns = staticmethod(time.perf_counter_ns)


class FakeClock:
    """A clock that only moves when told to; for deterministic tests."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        return self._now_ns

    def advance(self, delta_ns: int) -> None:
        self._now_ns += delta_ns


def wall_time_iso() -> str:
    """Current UTC wall-clock time, ISO 8601 with milliseconds, for labelling results."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
