"""Worker processes give the same result, in the same form, as one process on the same workload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadgen.cli import main
from tests.conftest import SimFactory


def run(tmp_path: Path, name: str, *args: str) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    output = tmp_path / name
    assert main(["run", "--quiet", "--output", str(output), *args]) == 0
    summary = json.loads((output / "summary.json").read_text())
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    return summary, records


def hlog_count(path: Path) -> int:
    reader = HistogramLogReader(str(path), HdrHistogram(1, 3_600_000_000, 3))
    total = 0
    while (interval := reader.get_next_interval_histogram()) is not None:
        total += interval.get_total_count()
    return total


def test_closed_loop_in_two_workers_matches_one_process(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:10,2")
    args = ["--endpoint", sim.url, "--concurrency", "6", "--requests", "30", "--warmup", "4", "--max-tokens", "10",
            "--hlog-interval", "100ms"]  # fmt: skip
    single, single_records = run(tmp_path, "one", *args)
    multi, multi_records = run(tmp_path, "two", *args, "--workers", "2")
    assert multi["workers"]["count"] == 2
    assert sorted(r["index"] for r in multi_records) == sorted(r["index"] for r in single_records) == list(range(34))
    assert sorted(r["prompt_id"] for r in multi_records) == sorted(r["prompt_id"] for r in single_records)
    for key in ("completed", "failed", "warmup_excluded"):
        assert multi["requests"][key] == single["requests"][key]
    assert multi["latency_ms"]["itl"]["count"] == single["latency_ms"]["itl"]["count"] == 30 * 9
    # the merged histograms hold exactly the workers' records (not the single run's timings, which
    # a busy machine moves): their TTFT and TPOT medians, recomputed from requests.jsonl
    measured = [r for r in multi_records if not r["warmup"] and r["error_kind"] is None]
    ttft_ms = sorted((r["first_token_ns"] - r["intended_ns"]) / 1e6 for r in measured)
    tpot_ms = sorted((r["end_ns"] - r["first_token_ns"]) / 1e6 / (r["output_tokens"] - 1) for r in measured)
    middle = (len(measured) + 1) // 2 - 1  # HDR's p50: the smallest value with half the samples at or below it
    assert multi["latency_ms"]["ttft"]["p50"] == pytest.approx(ttft_ms[middle], rel=2e-3)
    assert multi["latency_ms"]["tpot"]["p50"] == pytest.approx(tpot_ms[middle], rel=2e-3)
    assert set(multi) == set(single) and single["workers"] is None  # the same form
    assert hlog_count(tmp_path / "two" / "itl.hlog") == multi["latency_ms"]["itl"]["count"]
    assert not (tmp_path / "two" / "workers" / "w0" / "requests.jsonl").exists()  # merged, not duplicated
    # the merged clock section says how the workers stamped, and adds up their stamped reads
    shares = [
        json.loads((tmp_path / "two" / "workers" / w / "summary.json").read_text())["clock"] for w in ("w0", "w1")
    ]
    assert multi["clock"]["stamp_source"] == shares[0]["stamp_source"] == shares[1]["stamp_source"]
    assert multi["clock"]["stamp_source"] == single["clock"]["stamp_source"]
    assert multi["clock"]["kernel_stamped_reads"] == sum(share["kernel_stamped_reads"] for share in shares)
    assert multi["clock"]["sent_stamp"] == single["clock"]["sent_stamp"]
    opened = [json.loads((tmp_path / "two" / "workers" / w / "summary.json").read_text())["client"]["connections"]
              for w in ("w0", "w1")]  # fmt: skip
    assert multi["client"]["connections"]["opened"] == sum(share["opened"] for share in opened)


def test_open_loop_schedule_is_dealt_out_not_duplicated(start_sim: SimFactory, tmp_path: Path) -> None:
    sim = start_sim("fixed:2,1")
    args = ["--endpoint", sim.url, "--rate", "100", "--arrival", "poisson", "--seed", "7", "--requests", "40",
            "--max-tokens", "4"]  # fmt: skip
    _, single = run(tmp_path, "one", *args)
    _, multi = run(tmp_path, "two", *args, "--workers", "2")
    by_index = {r["index"]: r["intended_ns"] for r in single}
    assert sorted(r["index"] for r in multi) == sorted(by_index) == list(range(40))
    # the same arrival times request for request (offsets from each run's first arrival)
    single_start = min(by_index.values())
    multi_start = min(r["intended_ns"] for r in multi)
    for record in multi:
        assert record["intended_ns"] - multi_start == by_index[record["index"]] - single_start
