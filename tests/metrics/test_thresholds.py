import json
from pathlib import Path

import pytest

from loadgen.cli import main
from loadgen.metrics.results import RunSummary
from loadgen.metrics.thresholds import breaches, parse_threshold
from tests.conftest import SimFactory

SUMMARY = RunSummary.from_json(
    {
        "latency_ms": {"ttft": {"p99": 620.0, "p50": 100.0}, "tpot": {"p95": 40.0}},
        "requests": {"error_rate": 0.02},
        "goodput": {"fraction": 0.97},
        "throughput": {"requests_per_s": 10.0, "output_tokens_per_s": 900.0},
    }
)


def test_parse_units() -> None:
    assert parse_threshold("ttft_p99>500ms").value == 500.0
    assert parse_threshold("e2e_max >= 2s").value == 2000.0
    assert parse_threshold("tpot_p95<50").value == 50.0  # ms by default
    assert parse_threshold("error_rate>1%").value == pytest.approx(0.01)
    assert parse_threshold("goodput<0.95").value == 0.95


@pytest.mark.parametrize("text", ["ttft>5ms", "speed>1", "ttft_p99 500ms", "error_rate>lots"])
def test_bad_thresholds(text: str) -> None:
    with pytest.raises(ValueError):
        parse_threshold(text)


def test_breaches_list_what_was_measured() -> None:
    texts = (
        "ttft_p99>500ms",
        "tpot_p95>50ms",
        "error_rate>1%",
        "goodput<95%",
        "output_tokens_per_s<1000",
        "itl_p99>1s",
    )
    thresholds = tuple(parse_threshold(text) for text in texts)
    assert breaches(thresholds, SUMMARY) == [
        "ttft_p99>500ms: measured 620",
        "error_rate>1%: measured 0.02",
        "output_tokens_per_s<1000: measured 900",
        "itl_p99>1s: not measured",
    ]


def test_exit_code_gates(start_sim: SimFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = start_sim("fixed:20,2")
    args = ["run", "--quiet", "--endpoint", sim.url, "--requests", "4", "--max-tokens", "6"]
    assert main([*args, "--output", str(tmp_path / "a"), "--fail-on", "ttft_p50>5s"]) == 0
    out = capsys.readouterr().out
    assert "✓ c=1: ttft_p50>5s (> 5,000 ms fails): measured" in out
    assert main([*args, "--output", str(tmp_path / "b"), "--fail-on", "ttft_p50>10ms,error_rate>0%"]) == 99
    out = " ".join(capsys.readouterr().out.split())
    assert "thresholds breached" in out and "✗ c=1: ttft_p50>10ms (> 10 ms fails): measured" in out
    assert "✓ c=1: error_rate>0% (> 0% fails): measured 0%" in out
    result = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert [t["passed"] for t in result["thresholds"]] == [False, True] and result["thresholds"][0]["unit"] == "ms"
    assert main([*args, "--fail-on", "ttft>5ms"]) == 2
