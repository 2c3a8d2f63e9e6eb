"""The comparison maths: speedups with block-bootstrap intervals, pairs, lengths, the crossover."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.metrics.comparison import (
    ComparedLevel,
    CompareResult,
    Comparison,
    Speedup,
    candidate_verdict,
    compare_level,
)
from loadgen.metrics.results import RunSummary, Validity
from loadgen.records import RequestRecord, TokenMethod


def write_records(directory: Path, e2e_ms: list[float], tokens: int = 10) -> None:
    """Whole records as loadgen writes them: ``tokens`` chunks, one token each, the first at 10 % of E2E."""
    directory.mkdir(parents=True)
    lines = []
    for index, e2e in enumerate(e2e_ms):
        end = round(e2e * 1e6)
        first = round(end * 0.1)
        chunks = [first + (end - first) * k // max(1, tokens - 1) for k in range(tokens)]
        record = RequestRecord(index=index, prompt_id=str(index), warmup=False, intended_ns=0, sent_ns=0,
                               first_byte_ns=first, first_token_ns=first, end_ns=end, chunk_ns=chunks,
                               chunk_tokens=None, input_tokens=8, input_token_method=TokenMethod.SERVER_USAGE,
                               output_tokens=tokens, output_token_method=TokenMethod.SERVER_USAGE,
                               usage_output_tokens=tokens, tokenizer_output_tokens=None, finish_reason="length",
                               error_kind=None, error=None, http_status=200)  # fmt: skip
        lines.append(json.dumps(record.to_json_dict()))
    (directory / "requests.jsonl").write_text("\n".join(lines) + "\n")


def summary(tokens_per_s: float, concurrency: int | None = None) -> RunSummary:
    return RunSummary.from_json({"throughput": {"output_tokens_per_s": tokens_per_s},
                                 "load": {"concurrency": concurrency}})  # fmt: skip


def test_speedups_intervals_and_pairs(tmp_path: Path) -> None:
    write_records(tmp_path / "base", [100.0 + i for i in range(40)])
    write_records(tmp_path / "cand", [50.0 + i / 2 for i in range(40)])
    result = compare_level(tmp_path / "base", tmp_path / "cand", summary(100), summary(200), seed=1)
    assert result.e2e.speedup == pytest.approx(2.0, rel=0.01)
    assert result.e2e.low is not None and result.e2e.high is not None and result.e2e.low <= 2.0 <= result.e2e.high
    assert result.throughput_ratio == 2.0
    assert result.paired_candidate_faster == 1.0 and result.paired_requests == 40
    assert result.lengths_match is True


def test_unequal_lengths_are_flagged(tmp_path: Path) -> None:
    write_records(tmp_path / "base", [100.0] * 5, tokens=10)
    write_records(tmp_path / "cand", [100.0] * 5, tokens=12)
    assert compare_level(tmp_path / "base", tmp_path / "cand", summary(1), summary(1), 0).lengths_match is False


def _row(level: str, speedup: float, low: float, high: float, valid: bool = True) -> ComparedLevel:
    validity = Validity(verdict="valid" if valid else "client_saturated", valid=valid)
    comparison = Comparison(e2e=Speedup(speedup=speedup, low=low, high=high),
                            validity={"base": validity, "fast": validity})  # fmt: skip
    return ComparedLevel(level=level, candidate="fast", comparison=comparison)


def test_a_crossover_needs_a_level_where_the_candidate_helped_and_a_later_one_where_it_did_not() -> None:
    rows = [_row("c=1", 1.8, 1.6, 2.0), _row("c=64", 1.2, 1.1, 1.3), _row("c=128", 0.9, 0.8, 1.0),
            _row("c=256", 0.7, 0.6, 0.8)]  # fmt: skip
    verdict = candidate_verdict(rows, "fast")
    assert verdict.crossover == "c=128"
    assert verdict.text == "crossover: fast helps end to end up to c=64 and no longer at c=128"


def test_a_candidate_that_never_helped_has_no_crossover() -> None:
    """Before: "draft stops helping end to end at c=1" for a draft at 0.56× that never helped."""
    verdict = candidate_verdict([_row("c=1", 0.56, 0.5, 0.6), _row("c=8", 0.8, 0.7, 0.9)], "draft")
    assert verdict.crossover is None
    assert verdict.text == "draft never helped end to end: slower at c=1, c=8"
    unsure = candidate_verdict([_row("c=1", 1.05, 0.95, 1.2)], "draft")
    assert unsure.crossover is None and "not faster beyond doubt" in unsure.text


def test_no_winner_among_invalid_levels() -> None:
    """Before: "assisted is faster at every level measured" when every level was INVALID."""
    verdict = candidate_verdict([_row("c=1", 1.8, 1.6, 2.0, valid=False), _row("c=4", 1.7, 1.5, 1.9, valid=False)],
                                "assisted")  # fmt: skip
    assert not verdict.fair and verdict.text.startswith("no verdict: no level was valid for both variants")
    mixed = candidate_verdict([_row("c=1", 1.8, 1.6, 2.0), _row("c=4", 0.5, 0.4, 0.6, valid=False)], "assisted")
    assert mixed.text == "assisted is faster end to end at every valid level measured (1 INVALID level left out)"


def test_requests_that_ran_in_one_batch_are_resampled_together(tmp_path: Path) -> None:
    write_records(tmp_path / "base", [100.0 + i for i in range(8)])
    write_records(tmp_path / "cand", [220.0 + i for i in range(8)])
    one_batch = summary(100, concurrency=8)
    e2e = compare_level(tmp_path / "base", tmp_path / "cand", one_batch, one_batch, seed=1).e2e
    assert e2e.speedup is not None and e2e.low is None and "one batch" in (e2e.reason or "")
    several = summary(100, concurrency=2)
    wide = compare_level(tmp_path / "base", tmp_path / "cand", several, several, seed=1)
    narrow = compare_level(tmp_path / "base", tmp_path / "cand", summary(100), summary(100), seed=1).e2e
    assert wide.e2e.blocks == (4, 4) and narrow.blocks == (8, 8)
    assert "blocks of 2 consecutive requests" in str(wide.bootstrap)


def test_compare_json_reads_back_whole(tmp_path: Path) -> None:
    write_records(tmp_path / "base", [100.0 + i for i in range(12)])
    write_records(tmp_path / "cand", [60.0 + i for i in range(12)])
    comparison = compare_level(tmp_path / "base", tmp_path / "cand", summary(100), summary(150), seed=3)
    level = ComparedLevel(level="c=1", candidate="cand", comparison=comparison)
    result = CompareResult(baseline="base", levels=(level,))
    assert CompareResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_answers_not_streamed_have_no_tpot_and_no_division_by_zero(tmp_path: Path) -> None:
    write_records(tmp_path / "base", [100.0 + i for i in range(8)], tokens=1)  # one chunk: the whole answer
    write_records(tmp_path / "cand", [50.0 + i for i in range(8)], tokens=1)
    result = compare_level(tmp_path / "base", tmp_path / "cand", summary(10), summary(20), seed=0)
    assert result.tpot.speedup is None and result.tpot.reason and "not streamed" in result.tpot.reason
    assert result.e2e.speedup is not None and result.e2e.speedup > 1.5
    assert result.ttft.speedup is not None
