"""The live series behind Locust mode's charts, headless line and history CSV (no Locust here)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from loadgen.errors import ErrorKind
from loadgen.locust.live import (
    HISTORY_COLUMNS,
    MAX_POINTS,
    STATS_COLUMNS,
    LiveHistory,
    LiveWindow,
    latest_telemetry,
    progress_line,
    stats_csv_text,
)
from loadgen.metrics.aggregate import Aggregator
from tests.records import record


def window_of(*ttfts_ms: float, errors: int = 0) -> dict[str, object]:
    window = LiveWindow()
    for index, ttft in enumerate(ttfts_ms):
        window.on_record(record(index=index, chunks_ms=(ttft, ttft + 10, ttft + 20)))
    for index in range(errors):
        window.on_record(record(index=100 + index, error=ErrorKind.HTTP_5XX))
    state = window.drain()
    state["period_s"] = 2.0  # as if two seconds had passed
    return state


def test_a_tick_merges_every_process_window_exactly() -> None:
    history = LiveHistory()
    totals = Aggregator()
    history.add_window("worker-a", window_of(10, 20, 30))
    history.add_window("worker-b", window_of(40))
    point = history.tick(users=4, totals=totals, timestamp=1000.0)
    assert point.percentiles_ms["ttft"]["p50"] == pytest.approx(20, rel=1e-3)
    assert point.percentiles_ms["ttft"]["p99"] == pytest.approx(40, rel=1e-3)
    assert point.percentiles_ms["itl"]["p50"] == pytest.approx(10, rel=1e-3)
    assert point.requests_per_s == pytest.approx((3 + 1) / 2.0)
    assert point.output_tokens_per_s == pytest.approx((9 + 3) / 2.0)
    # nothing new came in: no percentiles for this tick, the processes' latest rates stay
    quiet = history.tick(users=4, totals=totals, timestamp=1002.0)
    assert quiet.percentiles_ms["ttft"] == {"p50": None, "p99": None}
    assert quiet.requests_per_s == point.requests_per_s
    history.forget("worker-b")  # lost: it no longer adds to the current rate
    assert history.tick(users=4, totals=totals).requests_per_s == pytest.approx(3 / 2.0)


def test_a_drained_window_starts_empty() -> None:
    window = LiveWindow()
    window.on_record(record(chunks_ms=(5, 6)))
    assert window.drain()["completed"] == 1
    assert window.drain()["completed"] == 0


def test_errors_per_second_by_kind_come_from_the_totals() -> None:
    history = LiveHistory()
    totals = Aggregator()
    history.tick(users=1, totals=totals)
    for index in range(3):
        totals.on_record(record(index=index, error=ErrorKind.TIMEOUT))
    point = history.tick(users=1, totals=totals)
    assert set(point.errors_per_s) == {"timeout"} and point.errors_per_s["timeout"] > 0
    assert history.tick(users=1, totals=totals).errors_per_s == {"timeout": 0.0}
    assert "errors/s" in progress_line(point)


def test_the_history_is_served_from_a_point_on_and_bounded() -> None:
    history = LiveHistory()
    totals = Aggregator()
    for second in range(MAX_POINTS + 5):
        history.tick(users=1, totals=totals, timestamp=float(second))
    body = history.to_json_dict(since=MAX_POINTS + 2)
    assert (body["first"], body["next"], len(body["points"])) == (MAX_POINTS + 2, MAX_POINTS + 5, 3)
    assert history.to_json_dict(since=0)["first"] == 5  # the five oldest were dropped
    json.dumps(body)  # what the web UI gets is plain JSON


def test_history_csv_is_written_tick_by_tick(tmp_path: Path) -> None:
    path = tmp_path / "run_llm_stats_history.csv"
    history = LiveHistory(path)
    history.add_window("local", window_of(10, 30))
    history.tick(users=2, totals=Aggregator(), timestamp=1796000000.5)
    rows = list(csv.reader(path.read_text().splitlines()))
    assert tuple(rows[0]) == HISTORY_COLUMNS and len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["Timestamp"] == "1796000000" and row["User Count"] == "2"
    assert float(row["TTFT 99% (ms)"]) == pytest.approx(30, rel=1e-3)
    assert history.csv_text() == path.read_text()


def test_stats_csv_has_locust_percentile_columns_and_exact_figures() -> None:
    aggregator = Aggregator()
    for index, ttft in enumerate((10.0, 20.0, 30.0, 40.0)):
        aggregator.on_record(record(index=index, chunks_ms=(ttft, ttft + 5)))
    aggregator.on_record(record(index=9, error=ErrorKind.STREAM_BROKEN))
    rows = list(csv.reader(io.StringIO(stats_csv_text(aggregator))))
    assert tuple(rows[0]) == STATS_COLUMNS and "99.99%" in rows[0]
    by_metric = {row[0]: dict(zip(rows[0], row, strict=False)) for row in rows[1:]}
    ttft = by_metric["TTFT"]
    assert (ttft["Unit"], ttft["Count"]) == ("ms", "4")
    assert float(ttft["50%"]) == pytest.approx(20, rel=1e-3) and float(ttft["100%"]) == pytest.approx(40, rel=1e-3)
    assert by_metric["Errors: stream_broken"]["Count"] == "1"


def test_latest_telemetry_skips_broken_lines(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.jsonl"
    path.write_text(
        '{"header": true}\n'
        '{"source": "gpu", "device": "0", "gpu_util_percent": 40, "power_w": 300}\n'
        "not json\n"
        '{"source": "gpu", "device": "0", "gpu_util_percent": 55, "power_w": true}\n'
        '{"source": "server", "kv_cache_usage": 0.25}\n'
        '{"source": "gpu", "device": "0", "gpu_util_per'  # cut mid-line by a sampler still writing
    )
    assert latest_telemetry(path) == {"gpu 0: util %": 55.0, "server: KV %": 25.0}
    assert latest_telemetry(tmp_path / "missing.jsonl") == {}
