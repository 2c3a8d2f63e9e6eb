"""Locust mode: what one process measured, kept exactly (HDR), and what the master merges.

Each process that runs users has a ``Recorder``: an ``Aggregator`` (the same one ``loadgen run``
uses) fed every ``RequestRecord``, with ``requests.jsonl`` and ``.hlog`` interval logs written as
it goes. A worker sends its aggregator's state (counters and compressed histograms) to the master;
the master merges the latest state of every worker into one exact summary. No gevent or Locust
imports here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from loadgen.clock import MonotonicClock, wall_time_iso
from loadgen.config import LoadConfig, LoadMode, SloTarget
from loadgen.engine.monitor import ClientReport
from loadgen.engine.runner import StopReason
from loadgen.metrics.aggregate import HISTOGRAM_NAMES, Aggregator, aggregator_state, merge_state
from loadgen.metrics.results import Distribution, LocustTest, LostWrites, RunSummary
from loadgen.metrics.summary import RunInfo
from loadgen.records import RequestRecord
from loadgen.report.console import THIN_LEGEND, THIN_MARK
from loadgen.report.files import HlogWriter, RecordWriter, WriteFailures
from loadgen.run.collect import Sections, conclude, summarize
from loadgen.run.judge import Judgement
from loadgen.telemetry.sidecar import read_window
from loadgen.telemetry.summary import summarize_window

TABLE_METRICS = (("ttft", "TTFT"), ("itl", "ITL"), ("tpot", "TPOT"), ("e2e", "End-to-end"))
NO_CLIENT_REPORT = ClientReport(None, None, False, None)


class Recorder:
    """One test in one process: records in, result files out."""

    def __init__(self, directory: Path, slo: tuple[SloTarget, ...] = (), hlog_interval_s: float = 1.0) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.run_start_ns = MonotonicClock.now_ns()
        self.started_at = wall_time_iso()
        self.failures = WriteFailures()
        self._hlog = HlogWriter(directory, HISTOGRAM_NAMES, time.time(), self.failures)
        self.aggregator = Aggregator(slo, round(hlog_interval_s * 1e9), self._hlog.on_interval)
        self._records = RecordWriter(directory / "requests.jsonl", self.failures)
        self.closed = False

    def on_record(self, record: RequestRecord) -> None:
        self.aggregator.on_record(record)
        self._records.on_record(record)

    def state(self) -> dict[str, Any]:
        """This process's totals so far, for the master (exact; histograms compressed)."""
        return aggregator_state(self.aggregator)

    def live_state(self) -> dict[str, Any]:
        """The same while the test runs: the interval logs are left as they are."""
        return aggregator_state(self.aggregator, close_interval=False)

    def lost_writes(self) -> dict[str, LostWrites] | None:
        """The result files that could not be written (a full disk), with the writes lost."""
        lost = {name: LostWrites(error=error, lost_writes=self.failures.lost[name])
                for name, error in self.failures.first.items()}  # fmt: skip
        return lost or None

    def close(self) -> None:
        if not self.closed:
            self.aggregator.flush()
            self._records.close()
            self._hlog.close()
            self.closed = True


def merged(states: list[dict[str, Any]], slo: tuple[SloTarget, ...] = ()) -> Aggregator:
    """One aggregator holding every worker's latest state."""
    aggregator = Aggregator(slo)
    for state in states:
        merge_state(aggregator, state)
    return aggregator


def write_summary(aggregator: Aggregator, directory: Path, *, endpoint: str, api: str, model: str | None,
                  stream: bool, users: int, started_at: str, partial: bool, slo: tuple[SloTarget, ...],
                  tokenizer: str | None, processes: int, test_start_ns: int, judgement: Judgement,
                  batch_size: int = 1, lost_workers: list[str] | None = None,
                  telemetry_file: Path | None = None, interrupted: bool = False,
                  output_errors: dict[str, LostWrites] | None = None) -> RunSummary:  # fmt: skip
    """``summary.json`` as ``loadgen run`` writes it (``loadgen.run.collect``: assembled, judged and
    written as every level is), the load being Locust's users; with ``telemetry_file``, the
    sidecar's samples over the test (it runs beside this process)."""
    stopped = StopReason.INTERRUPTED if partial or interrupted else StopReason.LOCUST_STOPPED
    stop_reason = (StopReason.WORKER_LOST if lost_workers else stopped).value
    info = RunInfo(
        endpoint=endpoint, api=api, model=model, load=LoadConfig(mode=LoadMode.CLOSED, concurrency=max(users, 1),
                                                                   batch_size=batch_size),
        stream=stream, started_at=started_at, ended_at=wall_time_iso(), partial=partial or interrupted,
        stop_reason=stop_reason, client=NO_CLIENT_REPORT, slo=slo, tokenizer=tokenizer, listener_failures={},
    )  # fmt: skip
    end_ns = MonotonicClock.now_ns()
    test = LocustTest(processes=processes, users=users, monotonic_start_ns=test_start_ns, monotonic_end_ns=end_ns,
                      lost_workers=tuple(lost_workers or ()))  # fmt: skip
    samples = read_window(telemetry_file, test_start_ns, end_ns) if telemetry_file is not None else []
    telemetry = summarize_window(samples, aggregator.output_tokens) if samples else None
    directory.mkdir(parents=True, exist_ok=True)
    sections = Sections(telemetry=telemetry, locust=test, output_errors=output_errors)
    return conclude(summarize(aggregator, info, sections), judgement, directory)


def table_rows(aggregator: Aggregator) -> list[dict[str, Any]]:
    """The rows of the web UI's loadgen tab: exact percentiles from the HDR histograms."""

    thin = False

    def row(metric: str, name: str, scale: float = 1.0, unit: str = "ms") -> dict[str, Any]:
        nonlocal thin
        stats = Distribution.of(aggregator.histogram(name).stats())
        thin = thin or bool(stats.thin_percentiles)

        def fmt(value: float | int | None) -> str:
            return "" if value is None else f"{float(value) * scale:,.2f}"

        def percentile(key: str) -> str:
            return fmt(stats.statistic(key)) + (THIN_MARK if stats.thin(key) else "")

        return {"metric": f"{metric} ({unit})", "count": stats.count, "mean": fmt(stats.mean), "p50": percentile("p50"),
                "p90": percentile("p90"), "p99": percentile("p99"), "p999": percentile("p99_9"),
                "max": fmt(stats.max)}  # fmt: skip

    rows = [row(label, name) for name, label in TABLE_METRICS]
    rows.append(row("Output tokens/s per request", "output_tokens_per_s", unit="tok/s"))
    if thin:
        rows.append({"metric": THIN_LEGEND})
    window = aggregator.window_s
    rate = f"{aggregator.output_tokens / window:,.1f}" if window else ""
    rows.append({"metric": "Output tokens/s, all requests", "count": aggregator.output_tokens, "mean": rate})
    rows.append({"metric": "Requests ok / failed", "count": f"{aggregator.completed} / {aggregator.failed}"})
    for kind, count in sorted(aggregator.errors_by_kind.items()):
        rows.append({"metric": f"Errors: {kind}", "count": count,
                     "mean": aggregator.first_error_by_kind.get(kind, "")[:120]})  # fmt: skip
    return rows


TELEMETRY_FIGURES = (
    ("gpu_util_percent", "util %", 1.0), ("power_w", "W", 1.0), ("memory_used_bytes", "GiB", 1 / 2**30),
    ("temperature_c", "°C", 1.0), ("core_util_percent", "core util %", 1.0), ("cpu_percent", "CPU %", 1.0),
    ("requests_running", "running", 1.0), ("requests_waiting", "waiting", 1.0), ("kv_cache_usage", "KV %", 100.0),
    ("generation_tokens_per_s", "gen tok/s", 1.0),
)  # fmt: skip


def latest_samples(path: Path, tail_bytes: int = 65536) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest sample of each (source, device) in the sidecar's ``telemetry.jsonl``."""
    if not path.is_file():
        return {}
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - tail_bytes))
        lines = file.read().decode("utf-8", "replace").splitlines()[1:]
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:
        try:
            sample = json.loads(line)
        except ValueError:
            continue
        if isinstance(sample, dict) and "source" in sample:
            latest[(str(sample["source"]), str(sample.get("device", "")))] = sample
    return latest


def telemetry_rows(path: Path) -> list[dict[str, Any]]:
    """The loadgen tab's telemetry rows: the latest reading of each source and device."""
    rows: list[dict[str, Any]] = []
    for (source, device), sample in sorted(latest_samples(path).items()):
        parts = [f"{sample[key] * scale:,.1f} {unit}" for key, unit, scale in TELEMETRY_FIGURES
                 if isinstance(sample.get(key), (int, float))]  # fmt: skip
        if parts:
            rows.append({"metric": f"Telemetry: {source} {device}".strip(), "count": " · ".join(parts)})
    return rows


TABLE_STRUCTURE = [
    {"key": "metric", "title": "Metric"}, {"key": "count", "title": "Count"}, {"key": "mean", "title": "Mean"},
    {"key": "p50", "title": "p50"}, {"key": "p90", "title": "p90"}, {"key": "p99", "title": "p99"},
    {"key": "p999", "title": "p99.9"}, {"key": "max", "title": "Max"},
]  # fmt: skip
