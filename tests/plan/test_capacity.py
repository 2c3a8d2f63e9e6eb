import pytest

from loadgen.config import SloTarget
from loadgen.errors import ConfigError
from loadgen.plan.capacity import load_sweep, replica_capacity
from tests.plan.sweeps import level, write_sweep

MS = 1_000_000
SLO = (SloTarget("ttft", 800 * MS, 95.0), SloTarget("tpot", 60 * MS, 95.0))


def capacity(tmp_path, levels):  # type: ignore[no-untyped-def]
    mode, parsed = load_sweep(write_sweep(tmp_path / "s", levels))
    return replica_capacity(parsed, SLO, mode == "closed")


def test_interpolates_the_binding_crossing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = capacity(tmp_path, [level(8, 4.0, 200, 30), level(16, 6.0, 400, 50), level(32, 8.0, 1200, 55)])
    # TTFT crosses 800 ms halfway from 400 to 1200: 6 + 0.5 × (8 − 6) = 7 req/s; TPOT never breaks
    assert result.kind == "interpolated"
    assert result.binding == "ttft_p95"
    assert result.requests_per_s == pytest.approx(7.0)
    assert (result.requests_per_s_low, result.requests_per_s_high) == (6.0, 8.0)
    assert result.users == pytest.approx(24.0)
    assert result.output_tokens_per_request == 200


def test_the_earliest_crossing_binds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # TTFT crosses at 0.5 of the way, TPOT (50 → 70, limit 60) at 0.5 too; make TPOT earlier: 50 → 90
    result = capacity(tmp_path, [level(16, 6.0, 400, 50), level(32, 8.0, 1200, 90)])
    assert result.binding == "tpot_p95"
    assert result.requests_per_s == pytest.approx(6.0 + 0.25 * 2.0)


def test_saturated_levels_keep_the_last_good_throughput(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = capacity(tmp_path, [level(32, 59.3, 109, 7), level(48, 48.0, 1357, 8)])
    assert result.kind == "saturated"
    assert result.requests_per_s == result.requests_per_s_low == result.requests_per_s_high == 59.3


def test_lower_bound_and_infeasible(tmp_path) -> None:  # type: ignore[no-untyped-def]
    never = capacity(tmp_path, [level(8, 4.0, 200, 30), level(16, 6.0, 300, 40), level(32, 5.5, 350, 45)])
    assert never.kind == "lower_bound" and never.binding == "none"
    assert never.requests_per_s == 6.0 and never.requests_per_s_high is None  # the most any level carried
    impossible = capacity(tmp_path / "x", [level(1, 0.5, 900, 30), level(2, 1.0, 950, 30)])
    assert impossible.kind == "infeasible" and impossible.binding == "ttft_p95"
    assert impossible.requests_per_s == 0.0


def test_errors_count_against_the_slo(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = capacity(tmp_path, [level(8, 4.0, 200, 30), level(16, 6.0, 300, 40, error_rate=0.05)])
    assert result.binding == "error_rate"
    assert result.requests_per_s == pytest.approx(4.0 + (0.01 / 0.05) * 2.0)


def test_bad_inputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"no sweep\.json or summary\.json"):
        load_sweep(str(tmp_path))
    with pytest.raises(ConfigError, match="percentile or mean SLOs"):
        replica_capacity([], (SloTarget("ttft", MS),), True)
    with pytest.raises(ConfigError, match="hold p50, p90, p95, p99, p99_9"):
        replica_capacity([], (SloTarget("ttft", MS, 75.0),), True)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "sweep.json").write_text('{"levels": [{"load": {}}]}')
    with pytest.raises(ConfigError, match=r"no output token count"):
        load_sweep(str(tmp_path / "bad"))


def test_mean_slos_plan_from_means_and_a_missing_statistic_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    levels = [level(8, 4.0, 200, 30), level(16, 6.0, 400, 50)]
    for summary, mean in zip(levels, (150.0, 350.0), strict=True):
        summary["latency_ms"]["ttft"]["mean"] = mean
    _, parsed = load_sweep(write_sweep(tmp_path / "s", levels))
    capacity = replica_capacity(parsed, (SloTarget("ttft", 250 * MS, mean=True),), True)
    assert capacity.binding == "ttft_mean" and capacity.requests_per_s == pytest.approx(4.0 + 0.5 * 2.0)
    with pytest.raises(ConfigError, match="no tpot mean at load 8; it has tpot p50, p95"):
        replica_capacity(parsed, (SloTarget("tpot", 50 * MS, mean=True),), True)
