"""Fidelity: sweep the simulator as one piece of hardware, plan for another, then sweep the simulator
as that other hardware; the plan's SLO-meeting load must be within 15 % of what it measures."""

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


def capacity(plan_json: dict, profile: str) -> float:  # type: ignore[type-arg]
    return next(c["capacity_rps"] for c in plan_json["candidates"] if c["profile"] == profile)


def test_plan_for_other_hardware_matches_a_sweep_of_it(tmp_path: Path) -> None:
    measured_h100 = sweep("aws-p5.48xlarge", tmp_path / "h100")
    predicted = capacity(plan(measured_h100, "aws-p5.48xlarge", tmp_path / "plan-h100"), "aws-p4d.24xlarge")
    measured_a100 = sweep("aws-p4d.24xlarge", tmp_path / "a100")
    actual = capacity(plan(measured_a100, "aws-p4d.24xlarge", tmp_path / "plan-a100"), "aws-p4d.24xlarge")
    assert actual > 0
    assert predicted == pytest.approx(actual, rel=0.15), f"predicted {predicted:.2f} req/s, measured {actual:.2f}"
