"""Planning tier: which sweep levels meet the SLOs, and the knee of a sweep.

The knee is the level farthest above the straight line from the first to the last point of the
throughput-against-latency curve, both normalised (the "kneedle" idea), among the levels judged
valid: where more load stops buying throughput and starts costing latency. It is only named when
the sweep shows that: from the knee to the last level, throughput grew by less than half as much
as the load did (``SATURATION_SHARE``), and end-to-end p50 rose by over 10 %. A sweep that never
saturates (throughput doubling with the rate, latency flat) has no knee. A level passes when every
percentile SLO holds and at most 1 % of its requests failed.
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


SATURATION_SHARE = 0.5  # after the knee, throughput grows by under half of the load's growth
LATENCY_RISE = 1.1  # and end-to-end p50 rises by over 10 %


def sweep_knee(summaries: Sequence[RunSummary]) -> int | None:
    """The knee of sweep summaries ordered by load (an index into them), or None: end-to-end p50
    against output tokens/s over the valid levels, named only where the sweep saturates after it."""
    eligible = [index for index, s in enumerate(summaries) if _judged_valid(s) and s.latency_ms.e2e.p50
                and s.throughput.output_tokens_per_s]  # fmt: skip
    points = [(summaries[i].latency_ms.e2e.p50 or 0.0, summaries[i].throughput.output_tokens_per_s or 0.0)
              for i in eligible]  # fmt: skip
    found = knee_index(points)
    if found is None:
        return None
    knee, last = summaries[eligible[found]], summaries[eligible[-1]]
    return eligible[found] if _saturates_after(knee, last) else None


def _judged_valid(summary: RunSummary) -> bool:
    return summary.validity is None or summary.validity.valid


def _offered(summary: RunSummary) -> float:
    load = summary.load
    base = (load.concurrency if load.mode == "closed" else load.rate) or 1.0
    return float(base) * (load.batch_size or 1)


def _saturates_after(knee: RunSummary, last: RunSummary) -> bool:
    load_growth = _offered(last) / _offered(knee) - 1
    throughput_growth = (last.throughput.output_tokens_per_s or 0.0) / (knee.throughput.output_tokens_per_s or 1.0) - 1
    latency_rise = (last.latency_ms.e2e.p50 or 0.0) / (knee.latency_ms.e2e.p50 or 1.0)
    return load_growth > 0 and throughput_growth < SATURATION_SHARE * load_growth and latency_rise > LATENCY_RISE
