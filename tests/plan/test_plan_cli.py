import json
from pathlib import Path

import pytest

from loadgen.cli import main
from loadgen.report.plan import read_plan
from tests.plan.sweeps import level, write_sweep

PROFILES = str(Path(__file__).parents[2] / "profiles")


def test_plan_prints_a_ranked_answer_and_writes_plan_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = write_sweep(tmp_path / "s", [level(8, 4.0, 200, 30), level(16, 6.0, 400, 50), level(32, 8.0, 1200, 55)])
    code = main(["plan", "--sweep", sweep, "--target-rate", "50", "--slo", "ttft_p95=800ms,tpot_p95=60ms",
                 "--profiles", PROFILES, "--measured-on", "dell-r760xa-4xh100-pcie", "--replica-accelerators", "1",
                 "--model", "llama-2-7b", "--output", str(tmp_path / "out")])  # fmt: skip
    shown = capsys.readouterr().out
    assert code == 0
    assert "capacity plan: 50 req/s peak" in shown and "dell-r760xa-4xh100-pcie" in shown
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    measured = next(c for c in plan["candidates"] if not c["estimate"])
    assert measured["binding"] == "ttft_p95"
    assert measured["replicas"] == 9 and measured["instances"] == 3  # 4 replicas per 4-GPU server
    assert plan["slo_ms"] == {"ttft_p95": 800.0, "tpot_p95": 60.0}
    assert len(plan["candidates"]) == 8
    typed = read_plan(tmp_path / "out" / "plan.json")  # what the report reads: the same figures, typed
    assert [c.replicas for c in typed.candidates] == [c["replicas"] for c in plan["candidates"]]
    assert typed.measured_capacity is not None and typed.measured_capacity.binding == "ttft_p95"
    # the Dell servers are priced as owned hardware, the AWS instances on demand: said, not mixed silently
    printed = " ".join(shown.split())
    assert "WARNING: the costs mix kinds of price, so they are not like for like (" in printed
    assert "owned hardware (purchase spread over its life, plus power): dell-" in printed
    assert {c["price_kind"] for c in plan["candidates"] if c["price_kind"]} == {"owned", "on_demand"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target-rate", "0"], "--target-rate 0: expected a positive number"),
        (["--target-rate", "5", "--slo", "ttft=800ms"], "percentile or mean SLOs"),
        (["--target-rate", "5", "--headroom", "-1"], "--headroom"),
        (["--target-rate", "5", "--profiles", "/nonexistent"], "no such file or directory"),
    ],
)
def test_plan_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                  message: str) -> None:  # fmt: skip
    sweep = write_sweep(tmp_path / "s", [level(8, 4.0, 200, 30)])
    base = ["plan", "--sweep", sweep, "--slo", "ttft_p95=800ms"]
    if "--slo" in args:
        base = base[:3]
    assert main([*base, *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_plan_warns_about_invalid_levels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    levels = [level(8, 4.0, 200, 30), level(16, 6.0, 400, 50), level(32, 8.0, 1200, 55)]
    levels[2]["validity"] = {"verdict": "target_lagging", "valid": False}
    sweep = write_sweep(tmp_path / "s", levels)
    assert main(["plan", "--sweep", sweep, "--target-rate", "50", "--slo", "ttft_p95=800ms"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert f"WARNING: invalid levels in the sweep: {sweep} c=32 (target_lagging)" in printed


def test_the_what_if_prefills_what_the_cache_did_not_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep against a server with a prefix cache: the roofline what-if prefills only the prompt
    tokens the cache did not serve (usage's cached_tokens), and says so."""
    levels = [level(8, 4.0, 200, 30), level(16, 6.0, 400, 50), level(32, 8.0, 1200, 55)]
    for summary in levels:
        summary["tokens"]["cached_input_total"] = 300 * summary["requests"]["completed"]  # of 500 per request
    sweep = write_sweep(tmp_path / "s", levels)
    assert main(["plan", "--sweep", sweep, "--target-rate", "50", "--slo", "ttft_p95=800ms,tpot_p95=60ms",
                 "--profiles", PROFILES, "--measured-on", "dell-r760xa-4xh100-pcie", "--replica-accelerators", "1",
                 "--model", "llama-2-7b", "--output", str(tmp_path / "out")]) == 0  # fmt: skip
    printed = " ".join(capsys.readouterr().out.split())
    assert "input tokens per request: 200 prefilled of 500 measured; the server's prefix cache served 300" in printed
