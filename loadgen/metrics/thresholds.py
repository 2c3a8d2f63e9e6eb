"""Metrics layer: k6-style pass/fail thresholds over summaries, so loadgen can gate a pipeline.

``ttft_p99>500ms`` fails a level whose TTFT p99 exceeds 500 ms; ``error_rate>1%`` one with more
than 1 % failed requests; ``goodput<95%``, ``output_tokens_per_s<1000``. Latencies:
``{ttft,itl,itl_chunk,tpot,e2e,schedule_lag}_{mean,p50,p90,p95,p99,p99_9,max}`` (ms unless a unit is
given); rates: ``error_rate``, ``goodput`` (percent or fraction); ``requests_per_s``,
``output_tokens_per_s``. A threshold whose metric was not measured counts as breached.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from loadgen.metrics.results import RunSummary, ThresholdOutcome
from loadgen.parsing import parse_duration_ns

LATENCY = re.compile(r"^(ttft|ttfot|itl|itl_chunk|tpot|e2e|schedule_lag)_(mean|p50|p90|p95|p99|p99_9|max)$")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
}  # fmt: skip
EXPRESSION = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=|>|<)\s*(.+?)\s*$")


@dataclass(frozen=True, slots=True)
class Threshold:
    """The condition that *fails* the run: ``metric op value`` (value in the metric's unit)."""

    text: str
    metric: str
    op: str
    value: float

    def breached_by(self, summary: RunSummary) -> tuple[bool, float | None]:
        measured = metric_value(summary, self.metric)
        if measured is None:
            return True, None
        return OPERATORS[self.op](measured, self.value), measured


def parse_threshold(text: str) -> Threshold:
    match = EXPRESSION.match(text)
    if not match:
        raise ValueError(f"expected a threshold like ttft_p99>500ms or error_rate>1%, got {text!r}")
    metric, op, raw = match.groups()
    if LATENCY.match(metric):
        value = parse_duration_ns(raw, "ms") / 1e6
    elif metric in ("error_rate", "goodput"):
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    elif metric in ("requests_per_s", "output_tokens_per_s"):
        value = float(raw)
    else:
        raise ValueError(f"unknown threshold metric {metric!r} in {text!r}")
    return Threshold(text.strip(), metric, op, value)


def metric_value(summary: RunSummary, metric: str) -> float | None:
    latency = LATENCY.match(metric)
    if latency:
        return summary.latency_ms.metric(latency.group(1)).statistic(latency.group(2))
    if metric == "error_rate":
        return summary.requests.error_rate
    if metric == "goodput":
        return summary.goodput.fraction if summary.goodput else None
    if metric == "requests_per_s":
        return summary.throughput.requests_per_s
    if metric == "output_tokens_per_s":
        return summary.throughput.output_tokens_per_s
    return None


def _unit(metric: str) -> str:
    if LATENCY.match(metric):
        return "ms"
    return {"error_rate": "%", "goodput": "%", "requests_per_s": "req/s", "output_tokens_per_s": "tok/s"}[metric]


def _shown(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value * 100:.3g}%"
    return f"{value:,.4g} {unit}"


def outcomes(thresholds: tuple[Threshold, ...], summary: RunSummary) -> tuple[ThresholdOutcome, ...]:
    """Every threshold's outcome for one level, for ``summary.json`` and the ✓/✗ list."""
    results = []
    for threshold in thresholds:
        breached, measured = threshold.breached_by(summary)
        unit = _unit(threshold.metric)
        limit = _shown(threshold.value, unit)
        text = "not measured" if measured is None else f"measured {_shown(measured, unit)}"
        line = f"{threshold.text} ({threshold.op} {limit} fails): {text}"
        results.append(ThresholdOutcome(threshold=threshold.text, metric=threshold.metric, fails_when=threshold.op,
                                        limit=threshold.value, measured=measured,
                                        unit="fraction" if unit == "%" else unit, passed=not breached,
                                        line=line))  # fmt: skip
    return tuple(results)


def breaches(thresholds: tuple[Threshold, ...], summary: RunSummary) -> list[str]:
    """One line per breached threshold: what was measured against what was allowed."""
    lines = []
    for threshold in thresholds:
        breached, measured = threshold.breached_by(summary)
        if breached:
            lines.append(f"{threshold.text}: " + ("not measured" if measured is None else f"measured {measured:g}"))
    return lines
