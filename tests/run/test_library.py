"""The library entry point: a plan resolved without argparse, run without the CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from loadgen.metrics.results import RunSummary
from loadgen.report import files
from loadgen.run import RunResult, run
from loadgen.scenario.plan import plan_from_flags
from tests.conftest import SimFactory


def test_run_returns_each_levels_summary_and_writes_it_once(start_sim: SimFactory, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    sim = start_sim("fixed:5,1")
    writes: Counter[str] = Counter()
    write_json = files.write_json

    def counted(path: Path, data: object) -> None:
        writes[path.name] += 1
        write_json(path, data)

    for module in ("loadgen.run.collect", "loadgen.run.session"):
        monkeypatch.setattr(f"{module}.write_json", counted)
    plan = plan_from_flags({"endpoint": sim.url, "api": "openai-completions", "concurrency": "1..2",
                            "requests": "6", "warmup": "0", "max_tokens": "4", "output": str(tmp_path / "out")},
                           sweep=True)  # fmt: skip
    result = run(plan)
    assert isinstance(result, RunResult) and result.exit_code == 0
    assert [summary.load.concurrency for summary in result.summaries] == [1, 2]
    on_disk = [json.loads(path.read_text()) for path in sorted((tmp_path / "out").glob("level-*/summary.json"))]
    assert on_disk == [summary.to_json() for summary in result.summaries]  # what the library returns it wrote
    assert [RunSummary.from_json(data) for data in on_disk] == list(result.summaries)  # and it reads back whole
    assert writes["summary.json"] == 2  # once per level: the verdict and server figures were in it already
    assert all(summary["validity"]["valid"] for summary in on_disk)


def test_a_plan_names_the_flag_that_is_wrong() -> None:
    from loadgen.errors import ConfigError

    with pytest.raises(ConfigError, match="--concurrency"):
        plan_from_flags({"concurrency": "many"})


def test_compare_variants_returns_what_compare_json_holds(tmp_path: Path) -> None:
    from loadgen.metrics.comparison import read_compare
    from loadgen.run import CompareRun, compare_variants
    from loadgen.run.compare import parse_variants

    plan = plan_from_flags({"concurrency": "1,2", "requests": "6", "warmup": "0", "max_tokens": "6",
                            "output": str(tmp_path / "out")}, sweep=True)  # fmt: skip
    variants = parse_variants(["slow=sim:fixed:10,4", "fast=sim:fixed:10,2"])
    outcome = compare_variants(plan, variants)
    assert isinstance(outcome, CompareRun) and outcome.exit_code == 0
    assert outcome.result == read_compare(tmp_path / "out" / "compare.json")
    assert [row.level for row in outcome.result.levels] == ["c=1", "c=2"]
    assert all(row.comparison.tpot.speedup and row.comparison.tpot.speedup > 1.5 for row in outcome.result.levels)
    assert [summary.load.concurrency for summary in outcome.summaries["fast"]] == [1, 2]
    on_disk = RunSummary.from_json(json.loads((tmp_path / "out" / "fast" / "level-02-c2" / "summary.json").read_text()))
    assert on_disk == outcome.summaries["fast"][1]
