"""The typed results: what loadgen writes reads back whole, results of schema 1 (written before
the typed summary) still load everywhere, and a file that does not fit is one line naming the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loadgen.errors import ConfigError
from loadgen.metrics.comparison import read_compare
from loadgen.metrics.results import SCHEMA_VERSION, RunSummary, read_levels, read_summary, read_sweep
from loadgen.plan.capacity import load_sweep
from loadgen.report.export import export_csv
from loadgen.report.html import render_report

V1 = Path(__file__).parent / "files" / "results-v1"  # written by loadgen at commit a197198


def test_schema_1_results_load_with_their_figures() -> None:
    run = read_summary(V1 / "run" / "summary.json")
    on_disk = json.loads((V1 / "run" / "summary.json").read_text())
    assert run.schema_version == 1 and run.latency_ms.ttft.p50 == on_disk["latency_ms"]["ttft"]["p50"]
    assert run.completed == on_disk["requests"]["completed"] == 8
    assert run.telemetry is not None and run.telemetry.samples == on_disk["telemetry"]["samples"]
    assert run.workers is None and run.server is None  # sections schema 1 left out when it had nothing
    sweep = read_sweep(V1 / "sweep" / "sweep.json")
    assert [level.load.concurrency for level in sweep.levels] == [1, 2]
    assert all(level.thresholds and level.thresholds[0].passed for level in sweep.levels)
    assert sweep.config.options["slo"][0]["metric"] == "ttft"
    compare = read_compare(V1 / "compare" / "compare.json")
    assert compare.baseline == "baseline" and [row.candidate for row in compare.levels] == ["assisted"]
    assert compare.levels[0].comparison.e2e.speedup is not None


def test_schema_1_results_still_report_export_and_plan(tmp_path: Path) -> None:
    html = render_report([V1 / "run", V1 / "sweep", V1 / "compare"])
    assert "run: " in html and "sweep: " in html and "comparison: " in html
    summaries, _ = export_csv([V1 / "sweep", V1 / "compare"], tmp_path / "csv")
    assert len(summaries.read_text().splitlines()) == 1 + 2 + 2  # a header, two levels, two variants' levels
    mode, levels = load_sweep(str(V1 / "sweep"))
    assert mode == "closed" and [level.load for level in levels] == [1.0, 2.0]


def test_what_is_written_reads_back_whole() -> None:
    old = read_summary(V1 / "run" / "summary.json")
    again = RunSummary.from_json(json.loads(json.dumps(old.to_json())))
    assert again == old and again.to_json()["schema_version"] == old.schema_version
    assert RunSummary().to_json()["schema_version"] == SCHEMA_VERSION
    assert set(RunSummary().to_json()) >= {"telemetry", "validity", "workers", "server"}  # every field, null or not


def test_a_field_that_does_not_fit_is_one_line_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"s\.json: Expected `int \| null`, got `str` - at `\$\.requests\.completed`"):
        RunSummary.from_json({"requests": {"completed": "many"}}, "s.json")
    with pytest.raises(ConfigError, match="schema_version 9 was written by a newer loadgen"):
        RunSummary.from_json({"schema_version": 9})
    with pytest.raises(ConfigError, match="expected a JSON object, got list"):
        RunSummary.from_json([])
    cut = tmp_path / "cut"
    shutil.copytree(V1 / "run", cut)
    (cut / "summary.json").write_text('{"schema_version": 1, "latency_ms": {')
    with pytest.raises(ConfigError, match=r"not valid JSON .*was the run cut off"):
        read_levels(cut)
    assert read_levels(tmp_path) is None


def test_a_percentile_from_too_few_samples_is_marked_by_the_stated_rule() -> None:
    """n ≥ 1.96²·p/(1−p): below it the 95 % interval of the percentile reaches past the largest sample."""
    from loadgen.metrics.results import Distribution, samples_needed

    assert [samples_needed(p) for p in (0.5, 0.9, 0.99, 0.999)] == [4, 35, 381, 3838]
    few = Distribution(count=380, p50=1.0, p90=2.0, p99=3.0, p99_9=4.0)
    enough = Distribution(count=381, p50=1.0, p90=2.0, p99=3.0, p99_9=4.0)
    assert few.thin_percentiles == ("p99", "p99_9") and few.thin("p99") and not few.thin("p90")
    assert enough.thin_percentiles == ("p99_9",)
    # decided from the count wherever the distribution comes from: a file that says otherwise is overruled
    read = Distribution.from_json({"count": 5000, "p99": 3.0, "p99_9": 4.0, "thin_percentiles": ["p99"]})
    assert read.thin_percentiles == ()
    assert Distribution(count=None, p99=3.0).thin_percentiles == ()  # an import that did not give its count
    assert Distribution.from_json(few.to_json()) == few
