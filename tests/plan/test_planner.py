import io
import math
from pathlib import Path

import pytest
from rich.console import Console

from loadgen.config import SloTarget
from loadgen.errors import ConfigError
from loadgen.hardware.profiles import load_profiles
from loadgen.plan.planner import PlanRequest, make_plan, replica_size
from loadgen.report.plan import print_plan
from tests.plan.sweeps import level, write_sweep

MS = 1_000_000
SLO = (SloTarget("ttft", 800 * MS, 95.0), SloTarget("tpot", 60 * MS, 95.0))
PROFILES = load_profiles(Path(__file__).parents[2] / "profiles")


def sweep(tmp_path: Path) -> str:
    return write_sweep(tmp_path / "s", [level(8, 4.0, 200, 30, joules=0.5), level(16, 6.0, 400, 50, joules=0.4),
                                        level(32, 8.0, 1200, 55)])  # fmt: skip


def test_replicas_instances_and_costs_by_hand(tmp_path: Path) -> None:
    request = PlanRequest(sweeps=(sweep(tmp_path),), slo=SLO, peak_rps=50, average_rps=20, headroom=0.2,
                          measured_on="aws-g5.xlarge")  # fmt: skip
    plan = make_plan(request, PROFILES)
    measured = plan.candidates[0]
    assert measured.profile == "aws-g5.xlarge" and not measured.estimate
    # capacity 7 req/s per replica (bracket 6–8); 50 × 1.2 = 60 req/s needed
    assert measured.replicas == math.ceil(60 / 7) == 9
    assert measured.replicas_range == (math.ceil(60 / 8), math.ceil(60 / 6)) == (8, 10)
    assert measured.instances == 9  # one GPU per g5.xlarge
    assert measured.cost_per_hour == pytest.approx(9 * 1.006)
    assert measured.cost_per_month == round(9 * 1.006 * 730)
    # 20 req/s × 200 tokens × 3600 s = 14.4 M tokens per hour
    assert measured.cost_per_million_output_tokens == pytest.approx(9 * 1.006 / 14.4, abs=1e-4)
    assert measured.joules_per_output_token == 0.4
    assert len(plan.candidates) == 1  # no --model: no what-if
    assert any("no what-if" in assumption for assumption in plan.assumptions)


def test_target_users_and_output_length_rescaling(tmp_path: Path) -> None:
    users = make_plan(PlanRequest(sweeps=(sweep(tmp_path),), slo=SLO, users=100, headroom=0.0), PROFILES)
    assert users.candidates[0].replicas == math.ceil(100 / 24)  # 24 users per replica at the crossing
    assert users.candidates[0].capacity_users == 24
    # the console says what replicas were sized by: users per replica, not req/s (it said req/s)
    shown = io.StringIO()
    print_plan(Console(file=shown, width=120, color_system=None), users)
    header = " ".join(shown.getvalue().split())
    assert "users $/M hardware /replica" in header and "req/s" not in header.split("hardware")[0] and " 24 " in header
    longer = make_plan(PlanRequest(sweeps=(sweep(tmp_path),), slo=SLO, peak_rps=10, output_tokens=400), PROFILES)
    assert longer.candidates[0].capacity_rps == pytest.approx(3.5)  # twice the tokens: half the requests/s
    assert any("scaled by 0.500" in assumption for assumption in longer.assumptions)


def test_what_if_candidates_are_ranked_and_marked(tmp_path: Path) -> None:
    request = PlanRequest(sweeps=(sweep(tmp_path),), slo=SLO, peak_rps=50, measured_on="aws-g5.xlarge",
                          model="llama-3-70b")  # fmt: skip
    plan = make_plan(request, PROFILES)
    by_name = {candidate.profile: candidate for candidate in plan.candidates}
    assert not by_name["aws-inf2.xlarge"].feasible  # 141 GB of weights on one 32 GB device
    assert by_name["aws-p5.48xlarge"].estimate and by_name["aws-p5.48xlarge"].replica_accelerators == 4
    feasible = [c for c in plan.candidates if c.feasible]
    costs = [c.cost_per_month for c in feasible if c.cost_per_month is not None]
    assert costs == sorted(costs)
    assert plan.calibration is None or plan.calibration > 0


def test_replica_size_is_the_fewest_accelerators_that_hold_the_weights() -> None:
    p5 = PROFILES.hardware["aws-p5.48xlarge"]
    assert replica_size(p5, PROFILES.models["llama-2-7b"]) == 1
    assert replica_size(p5, PROFILES.models["llama-3-70b"]) == 4  # 141 GB > 0.8 × 160 GB, ≤ 0.8 × 320 GB
    assert replica_size(p5, PROFILES.models["llama-3-70b-fp8"]) == 2
    assert replica_size(PROFILES.hardware["aws-g5.xlarge"], PROFILES.models["llama-3-70b"]) is None


def test_impossible_targets_and_bad_requests(tmp_path: Path) -> None:
    hopeless = write_sweep(tmp_path / "h", [level(1, 0.5, 900, 30), level(2, 1.0, 950, 30)])
    plan = make_plan(PlanRequest(sweeps=(hopeless,), slo=SLO, peak_rps=10), PROFILES)
    assert not plan.candidates[0].feasible
    assert "cannot be met" in plan.candidates[0].notes[0]
    with pytest.raises(ConfigError, match="one of the two"):
        make_plan(PlanRequest(sweeps=(hopeless,), slo=SLO), PROFILES)
    with pytest.raises(ConfigError, match="--measured-on nope"):
        make_plan(PlanRequest(sweeps=(hopeless,), slo=SLO, peak_rps=1, measured_on="nope"), PROFILES)
    with pytest.raises(ConfigError, match="--model gpt-9"):
        make_plan(PlanRequest(sweeps=(hopeless,), slo=SLO, peak_rps=1, model="gpt-9"), PROFILES)
