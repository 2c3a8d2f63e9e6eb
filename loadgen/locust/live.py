"""Locust mode: loadgen's figures while a test runs (pure; imports no Locust or gevent).

Each process that runs users keeps a ``LiveWindow``: an aggregator of the records since it last
reported. A worker sends its drained window with each report to the master; a process without
workers drains its own. The master (or that process) merges what came in each tick into one
``LivePoint``: the *current* TTFT/ITL/TPOT percentiles (of the requests that ended since the last
tick, exact HDR), output tokens/s (each process's latest rate, summed), errors per second by kind
and the latest telemetry readings. The points feed the web UI's loadgen charts, the headless
progress line and ``--csv``'s ``_llm_stats_history.csv``; ``_llm_stats.csv`` holds the whole
test's figures, in Locust's own CSV layout.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadgen.locust.recorder import TELEMETRY_FIGURES, latest_samples
from loadgen.metrics.aggregate import Aggregator, aggregator_state, merge_state
from loadgen.records import RequestRecord

LIVE_METRICS = (("ttft", "TTFT"), ("itl", "ITL"), ("tpot", "TPOT"), ("e2e", "End-to-end"))
MAX_POINTS = 3600  # an hour of 1 s ticks; older points are dropped from the charts (the CSV keeps them)
CSV_PERCENTILES = (50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99, 100.0)  # Locust's columns


class LiveWindow:
    """The records this process measured since its last ``drain``."""

    def __init__(self) -> None:
        self._aggregator = Aggregator(interval_ns=1 << 62)  # one interval: nothing is flushed on the way
        self._since = time.monotonic()

    def on_record(self, record: RequestRecord) -> None:
        self._aggregator.on_record(record)

    def drain(self) -> dict[str, Any]:
        """The window's exact state (for the master), and a fresh window from now on."""
        now = time.monotonic()
        state = aggregator_state(self._aggregator)
        state["period_s"] = now - self._since
        self._aggregator = Aggregator(interval_ns=1 << 62)
        self._since = now
        return state


@dataclass(frozen=True)
class LivePoint:
    """One tick of the live charts. Latencies in ms; ``None`` where no request ended in the tick."""

    timestamp: float  # wall clock, seconds since the epoch (as Locust's history)
    users: int
    completed: int  # whole test so far
    failed: int
    requests_per_s: float
    output_tokens_per_s: float
    percentiles_ms: dict[str, dict[str, float | None]]  # metric -> {"p50": .., "p99": ..}
    errors_per_s: dict[str, float]  # by loadgen's error kind, in this tick
    telemetry: dict[str, float] = field(default_factory=dict)  # "source device: figure" -> value

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)


class LiveHistory:
    """The master's (or a lone process's) series of ``LivePoint``; windows come in between ticks."""

    def __init__(self, history_csv: Path | None = None) -> None:
        self.points: list[LivePoint] = []
        self.dropped = 0  # points dropped from the front (past MAX_POINTS): ``since`` counts them too
        self._pending = Aggregator(interval_ns=1 << 62)
        self._rates: dict[str, tuple[float, float]] = {}  # process -> (requests/s, output tokens/s)
        self._errors_at_tick: dict[str, int] = {}
        self._ticked_at = time.monotonic()
        self._history_csv = history_csv
        if history_csv is not None:
            history_csv.parent.mkdir(parents=True, exist_ok=True)
            history_csv.write_text(_csv_line(HISTORY_COLUMNS), encoding="utf-8")

    def add_window(self, process: str, window: dict[str, Any]) -> None:
        merge_state(self._pending, window)
        period = float(window.get("period_s") or 0.0)
        if period > 0:
            ended = window["completed"] + window["failed"]
            self._rates[process] = (ended / period, window["output_tokens"] / period)

    def forget(self, process: str) -> None:
        """A process that left the test no longer adds to the current rates."""
        self._rates.pop(process, None)

    def tick(self, users: int, totals: Aggregator, telemetry: dict[str, float] | None = None,
             timestamp: float | None = None) -> LivePoint:  # fmt: skip
        now = time.monotonic()
        elapsed = max(1e-9, now - self._ticked_at)
        self._ticked_at = now
        pending, self._pending = self._pending, Aggregator(interval_ns=1 << 62)
        percentiles = {
            name: {"p50": pending.histogram(name).percentile(50), "p99": pending.histogram(name).percentile(99)}
            for name, _ in LIVE_METRICS
        }
        errors = dict(totals.errors_by_kind)
        errors_per_s = {kind: (count - self._errors_at_tick.get(kind, 0)) / elapsed for kind, count in errors.items()}
        self._errors_at_tick = errors
        point = LivePoint(
            timestamp=time.time() if timestamp is None else timestamp, users=users, completed=totals.completed,
            failed=totals.failed, requests_per_s=sum(rate for rate, _ in self._rates.values()),
            output_tokens_per_s=sum(rate for _, rate in self._rates.values()), percentiles_ms=percentiles,
            errors_per_s=errors_per_s, telemetry=telemetry or {},
        )  # fmt: skip
        self.points.append(point)
        if len(self.points) > MAX_POINTS:
            self.dropped += len(self.points) - MAX_POINTS
            del self.points[:-MAX_POINTS]
        if self._history_csv is not None:
            with self._history_csv.open("a", encoding="utf-8") as file:
                file.write(_csv_line(history_row(point)))
        return point

    def csv_text(self) -> str:
        """The points still held, as ``_llm_stats_history.csv`` lays them out."""
        return _csv_line(HISTORY_COLUMNS) + "".join(_csv_line(history_row(point)) for point in self.points)

    def to_json_dict(self, since: int = 0) -> dict[str, Any]:
        """The points from number ``since`` on (a page that has the first ``since`` asks for the rest)."""
        first = max(since, self.dropped)
        return {"first": first, "next": self.dropped + len(self.points), "metrics": dict(LIVE_METRICS),
                "points": [point.to_json_dict() for point in self.points[first - self.dropped :]]}  # fmt: skip


HISTORY_COLUMNS = (
    "Timestamp", "User Count", "Requests ok", "Requests failed", "Requests/s", "Output tokens/s",
    *(f"{label} {p} (ms)" for _, label in LIVE_METRICS for p in ("50%", "99%")), "Errors/s by kind",
)  # fmt: skip


def history_row(point: LivePoint) -> list[object]:
    latencies = [_fmt(point.percentiles_ms[name][p]) for name, _ in LIVE_METRICS for p in ("p50", "p99")]
    errors = " ".join(f"{kind}={rate:.2f}" for kind, rate in sorted(point.errors_per_s.items()) if rate)
    return [int(point.timestamp), point.users, point.completed, point.failed, f"{point.requests_per_s:.2f}",
            f"{point.output_tokens_per_s:.1f}", *latencies, errors]  # fmt: skip


STATS_COLUMNS = ("Metric", "Unit", "Count", "Average", "Min", "Max",
                 *(f"{p:g}%" for p in CSV_PERCENTILES))  # fmt: skip


def stats_rows(aggregator: Aggregator) -> list[list[object]]:
    """The whole test's figures in Locust's ``_stats.csv`` layout: a row per metric, exact HDR."""
    rows: list[list[object]] = []
    for name, label, unit in (*((name, label, "ms") for name, label in LIVE_METRICS),
                              ("output_tokens_per_s", "Output tokens/s per request", "tok/s")):  # fmt: skip
        histogram = aggregator.histogram(name)
        stats = histogram.stats()
        rows.append([label, unit, stats.count, _fmt(stats.mean), _fmt(stats.min), _fmt(stats.max),
                     *(_fmt(histogram.percentile(p)) for p in CSV_PERCENTILES)])  # fmt: skip
    window = aggregator.window_s
    rate = aggregator.output_tokens / window if window else None
    rows.append(["Output tokens/s, all requests", "tok/s", aggregator.output_tokens, _fmt(rate)])
    rows.append(["Requests ok", "", aggregator.completed])
    for kind, count in sorted(aggregator.errors_by_kind.items()):
        rows.append([f"Errors: {kind}", "", count])
    return rows


def stats_csv_text(aggregator: Aggregator) -> str:
    return _csv_line(STATS_COLUMNS) + "".join(_csv_line(row) for row in stats_rows(aggregator))


def write_stats_csv(path: Path, aggregator: Aggregator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(stats_csv_text(aggregator), "utf-8")


def progress_line(point: LivePoint) -> str:
    """The headless mode's loadgen line, printed under Locust's own stats each tick."""
    ttft = point.percentiles_ms["ttft"]
    tpot = point.percentiles_ms["tpot"]
    errors = sum(point.errors_per_s.values())
    return (f"loadgen: {point.completed} ok, {point.failed} failed · TTFT p50 {_ms(ttft['p50'])} p99 "
            f"{_ms(ttft['p99'])} · TPOT p50 {_ms(tpot['p50'])} · {point.output_tokens_per_s:,.1f} output tok/s"
            + (f" · {errors:.2f} errors/s" if errors else ""))  # fmt: skip


def latest_telemetry(path: Path) -> dict[str, float]:
    """The latest reading of each charted figure per source and device in ``telemetry.jsonl``."""
    latest: dict[str, float] = {}
    for (source, device), sample in sorted(latest_samples(path).items()):
        for key, unit, scale in TELEMETRY_FIGURES:
            value = sample.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                latest[f"{source} {device}".strip() + f": {unit}"] = float(value) * scale
    return latest


def _csv_line(values: Iterable[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms"
