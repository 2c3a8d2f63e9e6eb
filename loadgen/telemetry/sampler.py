"""Telemetry layer: the sampler thread. Polls every source each interval, stamps the samples on
the monotonic clock, keeps them for per-level summaries and hands each to ``sink`` (the
``telemetry.jsonl`` writer).

It runs in its own thread so a slow scrape never delays the event loop's reads, and it measures
its own cost with ``time.thread_time_ns`` (CPU time of this thread only).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from loadgen.telemetry.model import Sample, Source, SourceUnavailable


@dataclass(frozen=True, slots=True)
class SamplerStats:
    interval_s: float
    polls: int
    samples: int
    cpu_s: float
    wall_s: float
    errors: dict[str, int]
    unavailable: dict[str, str]

    @property
    def cpu_percent_of_core(self) -> float | None:
        return round(100.0 * self.cpu_s / self.wall_s, 3) if self.wall_s > 0 else None


class Sampler:
    def __init__(
        self,
        sources: list[Source],
        interval_s: float = 0.25,
        sink: Callable[[Sample], None] | None = None,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._sources = list(sources)
        self._interval_s = interval_s
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples: list[Sample] = []
        self.unavailable: dict[str, str] = {}
        self.errors: Counter[str] = Counter()
        self.first_error: dict[str, str] = {}
        self._polls = 0
        self._cpu_ns = 0
        self._started_ns = 0
        self._stopped_ns: int | None = None

    def start(self) -> dict[str, str]:
        """Opens the sources; returns {source: why} for those that cannot run here."""
        usable = []
        for source in self._sources:
            try:
                source.open()
                usable.append(source)
            except SourceUnavailable as exc:
                self.unavailable[source.name] = str(exc)
        self._sources = usable
        self._started_ns = self._clock()
        if usable:
            self._thread = threading.Thread(target=self._run, name="loadgen-telemetry", daemon=True)
            self._thread.start()
        return dict(self.unavailable)

    @property
    def active(self) -> bool:
        return bool(self._sources)

    @property
    def sources(self) -> list[Source]:
        return list(self._sources)

    def _run(self) -> None:
        next_poll = time.monotonic()
        while not self._stop.is_set():
            self.sample_now()
            next_poll += self._interval_s
            delay = next_poll - time.monotonic()
            if delay < 0:
                next_poll = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def sample_now(self) -> None:
        """Poll every source once (also called at level boundaries for exact edges)."""
        with self._lock:
            started_cpu = time.thread_time_ns()
            t_ns = self._clock()
            for source in list(self._sources):
                try:
                    samples = source.read(t_ns)
                except SourceUnavailable as exc:
                    self.unavailable[source.name] = str(exc)
                    self._sources.remove(source)
                    continue
                except Exception as exc:
                    self.errors[source.name] += 1
                    self.first_error.setdefault(source.name, f"{type(exc).__name__}: {exc}")
                    continue
                self.samples.extend(samples)
                if self._sink is not None:
                    for sample in samples:
                        self._sink(sample)
            self._polls += 1
            self._cpu_ns += time.thread_time_ns() - started_cpu

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for source in self._sources:
            try:
                source.close()
            except Exception as exc:
                self.errors[source.name] += 1
                self.first_error.setdefault(source.name, f"close: {exc}")
        self._stopped_ns = self._clock()

    def stats(self) -> SamplerStats:
        end = self._stopped_ns if self._stopped_ns is not None else self._clock()
        return SamplerStats(
            interval_s=self._interval_s,
            polls=self._polls,
            samples=len(self.samples),
            cpu_s=self._cpu_ns / 1e9,
            wall_s=(end - self._started_ns) / 1e9,
            errors=dict(self.errors),
            unavailable=dict(self.unavailable),
        )

    def window(self, start_ns: int, end_ns: int) -> list[Sample]:
        with self._lock:
            return [sample for sample in self.samples if start_ns <= sample.t_ns <= end_ns]
