"""Run tier: ``--find-max`` — the highest load that meets percentile SLOs.

Bracketing then bisection: from the first level, the load doubles until a level breaks an SLO (or
the ceiling, the range's end, is reached), then the last passing and first failing loads are
bisected until they are adjacent (concurrency) or within 5 % (rate). A level passes when every
percentile SLO holds and at most 1 % of its requests failed. A probe whose median is already
twice over an SLO is stopped early (``clearly_over_slo``): it cannot pass, so the rest of its
requests would only cost time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from loadgen.config import LoadConfig, LoadMode, SloTarget
from loadgen.metrics.aggregate import Aggregator
from loadgen.metrics.results import RunSummary
from loadgen.plan.knee import level_passes

RATE_PRECISION = 0.05
EARLY_STOP_FACTOR = 2.0


class MaxLoadSearch:
    """Feeds levels one at a time; ``send`` each level's summary back through ``record``."""

    def __init__(self, template: LoadConfig, start: float, ceiling: float, slo: tuple[SloTarget, ...]) -> None:
        self._template = template
        self._closed = template.mode is LoadMode.CLOSED
        self._slo = slo
        self._next: float | None = start
        self._ceiling = ceiling
        self.passed: float | None = None
        self.failed: float | None = None

    def _load(self, value: float) -> LoadConfig:
        if self._closed:
            users = int(value)
            return dataclasses.replace(self._template, concurrency=users,
                                       requests=max(8, 4 * users), warmup_requests=users)  # fmt: skip
        return dataclasses.replace(self._template, rate_rps=value, requests=max(20, round(10 * value)))

    def levels(self) -> Iterator[LoadConfig]:
        while self._next is not None:
            yield self._load(self._next)

    def record(self, summary: RunSummary) -> None:
        value = float((summary.load.concurrency if self._closed else summary.load.rate) or 0)
        if level_passes(summary, self._slo):
            self.passed = max(self.passed or value, value)
        else:
            self.failed = min(self.failed or value, value)
        self._next = self._choose()

    def _choose(self) -> float | None:
        if self.failed is None:  # still bracketing
            current = self.passed or 0.0
            nxt = min(current * 2, self._ceiling)
            return None if nxt <= current else nxt
        if self.passed is None:
            return None  # the first level already failed
        low, high = self.passed, self.failed
        if self._closed:
            return None if high - low <= 1 else float((low + high) // 2)
        return None if (high - low) <= RATE_PRECISION * low else (low + high) / 2


def clearly_over_slo(aggregator: Aggregator, slo: tuple[SloTarget, ...], min_requests: int) -> str | None:
    """Why a probe is already clearly over its SLOs, or None: once ``min_requests`` completed, a
    *median* above twice a percentile SLO's threshold cannot come back under it."""
    if aggregator.completed < min_requests:
        return None
    for target in slo:
        if target.percentile is None:  # a mean can still come back under its threshold
            continue
        median = aggregator.histogram(target.metric).percentile(50)
        limit_ms = target.threshold_ns / 1e6
        if median is not None and median > EARLY_STOP_FACTOR * limit_ms:
            return (f"{target.metric} median {median:,.0f} ms after {aggregator.completed} requests, over "
                    f"{EARLY_STOP_FACTOR:g}× the p{target.percentile:g} SLO of {limit_ms:g} ms")  # fmt: skip
    return None
