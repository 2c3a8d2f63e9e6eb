"""Planning tier: which sweep levels meet the SLOs, and the knee of a sweep.

The knee is the level farthest above the straight line from the first to the last point of the
throughput-against-latency curve, both normalised (the "kneedle" idea): where more load stops
buying throughput and starts costing latency. A level passes when every percentile SLO holds and
at most 1 % of its requests failed.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadgen.config import SloTarget
from loadgen.metrics.results import RunSummary
from loadgen.metrics.thresholds import metric_value
from loadgen.plan.capacity import MAX_ERROR_RATE, slo_key


def level_passes(summary: RunSummary, slo: tuple[SloTarget, ...]) -> bool:
    for target in slo:
        value = metric_value(summary, slo_key(target))
        if value is None or value > target.threshold_ns / 1e6:
            return False
    return (summary.requests.error_rate or 0.0) <= MAX_ERROR_RATE


def knee_index(points: list[tuple[float, float]]) -> int | None:
    """Index of the knee of (latency, throughput) points ordered by load; None below 3 points."""
    if len(points) < 3:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_span, y_span = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    normalised = [((x - min(xs)) / x_span, (y - min(ys)) / y_span) for x, y in points]
    (x0, y0), (x1, y1) = normalised[0], normalised[-1]

    def above_line(point: tuple[float, float]) -> float:
        x, y = point
        return (y - y0) - (y1 - y0) * ((x - x0) / ((x1 - x0) or 1.0))

    distances = [above_line(point) for point in normalised]
    best = max(range(len(points)), key=lambda i: distances[i])
    return best if distances[best] > 0 else None


def sweep_knee(summaries: Sequence[RunSummary]) -> int | None:
    """The knee of sweep summaries ordered by load: end-to-end p50 against output tokens/s."""
    if all(s.latency_ms.e2e.p50 is None for s in summaries):
        return None  # an imported table without end-to-end latencies
    points = [(s.latency_ms.e2e.p50 or 0.0, s.throughput.output_tokens_per_s or 0.0) for s in summaries]
    return knee_index(points)
