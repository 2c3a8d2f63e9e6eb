"""Fidelity: sweep the simulator as one piece of hardware, plan for another, then sweep the simulator
as that other hardware; the plan's SLO-meeting load must be within 15 % of what it measures. The
same sweep, written out as a plain table (as a vendor publishes one) and imported, must give the
same plan, and the other hardware's measured capacity must lie within that plan's bracket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.cli import main

PROFILES = Path(__file__).parents[2] / "profiles"
SLO = "ttft_p95=400ms,tpot_p95=50ms"


def sweep(hardware: str, output: Path) -> str:
    code = main([
        "sweep", "--quiet", "--sim-profile", f"llama-2-7b@{PROFILES / (hardware + '.yaml')},max_batch=32",
        "--concurrency", "16,32,48", "--requests", "96", "--synthetic", "input=128,output=64,count=64",
        "--output", str(output),
    ])  # fmt: skip
    assert code == 0
    return str(output)


def plan(sweep_dir: str, measured_on: str, output: Path) -> dict:  # type: ignore[type-arg]
    code = main([
        "plan", "--sweep", sweep_dir, "--slo", SLO, "--target-rate", "100", "--profiles", str(PROFILES),
        "--measured-on", measured_on, "--model", "llama-2-7b", "--max-batch", "32", "--output", str(output),
    ])  # fmt: skip
    assert code == 0
    return json.loads((output / "plan.json").read_text())  # type: ignore[no-any-return]


def capacity(plan_json: dict, profile: str, key: str = "capacity_rps") -> float:  # type: ignore[type-arg]
    return next(c[key] for c in plan_json["candidates"] if c["profile"] == profile)  # type: ignore[no-any-return]


def as_table(sweep_dir: str, path: Path) -> Path:
    """The sweep as a Markdown table of percentiles and throughput: no histograms, no records."""
    header = "| Concurrency | TTFT p95 (ms) | TPOT p95 (ms) | Requests/s | Output tokens/s | OSL | ISL |"
    lines = [header, "|---" * 7 + "|"]
    for level in json.loads((Path(sweep_dir) / "sweep.json").read_text())["levels"]:
        completed, tokens = level["requests"]["completed"], level["tokens"]
        lines.append(f"| {level['load']['concurrency']} | {level['latency_ms']['ttft']['p95']} | "
                     f"{level['latency_ms']['tpot']['p95']} | {level['throughput']['requests_per_s']} | "
                     f"{level['throughput']['output_tokens_per_s']} | {tokens['output_total'] / completed} | "
                     f"{tokens['input_total'] / completed} |")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_plan_for_other_hardware_matches_a_sweep_of_it(tmp_path: Path) -> None:
    measured_h100 = sweep("aws-p5.48xlarge", tmp_path / "h100")
    predicted = capacity(plan(measured_h100, "aws-p5.48xlarge", tmp_path / "plan-h100"), "aws-p4d.24xlarge")
    measured_a100 = sweep("aws-p4d.24xlarge", tmp_path / "a100")
    actual = capacity(plan(measured_a100, "aws-p4d.24xlarge", tmp_path / "plan-a100"), "aws-p4d.24xlarge")
    assert actual > 0
    assert predicted == pytest.approx(actual, rel=0.15), f"predicted {predicted:.2f} req/s, measured {actual:.2f}"

    table = as_table(measured_h100, tmp_path / "h100.md")
    assert main(["import", str(table), "--output", str(tmp_path / "imported")]) == 0
    from_table = plan(str(tmp_path / "imported"), "aws-p5.48xlarge", tmp_path / "plan-imported")
    assert capacity(from_table, "aws-p4d.24xlarge") == pytest.approx(predicted, rel=1e-3)
    low, high = (capacity(from_table, "aws-p4d.24xlarge", key) for key in ("capacity_rps_low", "capacity_rps_high"))
    assert low <= actual <= high, f"measured {actual:.2f} req/s outside the imported plan's {low:.2f}–{high:.2f}"
