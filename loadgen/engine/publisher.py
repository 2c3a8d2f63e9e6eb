"""Engine layer: fans each finished request's record out to the listeners (metrics, writers,
console). A listener that raises is counted and its first error kept, never swallowed silently:
the counts land in the summary's ``listener_failures``."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from loadgen.records import RequestRecord


class RecordListener(Protocol):
    def on_record(self, record: RequestRecord) -> None: ...


class Publisher:
    def __init__(self, listeners: list[RecordListener]) -> None:
        self._listeners = list(listeners)
        self.failures: Counter[str] = Counter()
        self.first_failure: dict[str, str] = {}

    def publish(self, record: RequestRecord) -> None:
        for listener in self._listeners:
            try:
                listener.on_record(record)
            except Exception as exc:
                name = type(listener).__name__
                self.failures[name] += 1
                self.first_failure.setdefault(name, f"{type(exc).__name__}: {exc}")
