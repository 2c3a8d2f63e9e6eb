from loadgen.config import LoadConfig, LoadMode, SloTarget
from loadgen.metrics.results import RunSummary
from loadgen.plan.knee import knee_index, sweep_knee
from loadgen.run.find_max import MaxLoadSearch

SLO = (SloTarget("ttft", 500_000_000, 99.0),)


def summary(concurrency: int, ttft_p99: float, error_rate: float = 0.0) -> RunSummary:
    return RunSummary.from_json({"load": {"concurrency": concurrency, "rate": None},
                                 "latency_ms": {"ttft": {"p99": ttft_p99}},
                                 "requests": {"error_rate": error_rate}})  # fmt: skip


def search_against(limit: int, start: int = 4, ceiling: int = 256) -> tuple[list[int], MaxLoadSearch]:
    """A server whose TTFT p99 passes up to ``limit`` users."""
    search = MaxLoadSearch(LoadConfig(mode=LoadMode.CLOSED, concurrency=start), start, ceiling, SLO)
    probed = []
    for load in search.levels():
        probed.append(load.concurrency)
        search.record(summary(load.concurrency, 100.0 if load.concurrency <= limit else 900.0))
    return probed, search


def test_bracketing_then_bisection_finds_the_limit() -> None:
    probed, search = search_against(limit=70)
    assert probed[:6] == [4, 8, 16, 32, 64, 128]
    assert (search.passed, search.failed) == (70, 71)
    assert len(probed) <= 6 + 7


def test_limits_at_the_edges() -> None:
    _, everything = search_against(limit=10_000)
    assert everything.passed == 256 and everything.failed is None
    probed, nothing = search_against(limit=1)
    assert probed == [4] and nothing.passed is None and nothing.failed == 4


def test_errors_fail_a_level() -> None:
    search = MaxLoadSearch(LoadConfig(mode=LoadMode.CLOSED, concurrency=2), 2, 8, SLO)
    search.record(summary(2, 100.0, error_rate=0.05))
    assert search.failed == 2 and search.passed is None


def test_open_loop_bisects_to_five_percent() -> None:
    search = MaxLoadSearch(LoadConfig(mode=LoadMode.OPEN, rate_rps=10.0), 10.0, 1000.0, SLO)
    for load in search.levels():
        rate = load.rate_rps or 0.0
        search.record(RunSummary.from_json({"load": {"mode": "open", "concurrency": None, "rate": rate},
                                            "latency_ms": {"ttft": {"p99": 100.0 if rate <= 123.0 else 900.0}},
                                            "requests": {"error_rate": 0.0}}))  # fmt: skip
    assert search.passed is not None and search.failed is not None
    assert search.passed <= 123.0 < search.failed <= search.passed * 1.05


def test_knee_of_a_saturating_curve() -> None:
    # (latency, throughput): throughput grows, then latency grows without throughput
    points = [(100, 10), (105, 40), (110, 70), (130, 95), (400, 100), (900, 101)]
    assert knee_index(points) == 3
    assert knee_index(points[:2]) is None


def test_clearly_over_slo_needs_enough_requests_and_a_median_twice_over() -> None:
    from loadgen.metrics.aggregate import Aggregator
    from loadgen.run.find_max import clearly_over_slo
    from tests.records import record

    aggregator = Aggregator()
    for index in range(5):
        aggregator.on_record(record(intended_ms=0, chunks_ms=(1200.0,), end_ms=1300.0, index=index))
    assert clearly_over_slo(aggregator, SLO, min_requests=10) is None  # too few yet
    for index in range(5, 10):
        aggregator.on_record(record(intended_ms=0, chunks_ms=(1200.0,), end_ms=1300.0, index=index))
    reason = clearly_over_slo(aggregator, SLO, min_requests=10)
    assert reason is not None and "ttft median 1,200 ms" in reason
    calm = Aggregator()
    for index in range(10):
        calm.on_record(record(intended_ms=0, chunks_ms=(600.0,), end_ms=700.0, index=index))
    assert clearly_over_slo(calm, SLO, min_requests=10) is None  # over the SLO, but not twice over


def _level(
    load: float, tokens_per_s: float, e2e_ms: float, *, open_loop: bool = False, valid: bool = True
) -> RunSummary:
    return RunSummary.from_json({
        "load": {"mode": "open" if open_loop else "closed", "concurrency": None if open_loop else int(load),
                 "rate": load if open_loop else None},
        "throughput": {"output_tokens_per_s": tokens_per_s}, "latency_ms": {"e2e": {"p50": e2e_ms}},
        "validity": {"verdict": "valid" if valid else "client_saturated", "valid": valid},
    })  # fmt: skip


def test_a_sweep_that_never_saturates_has_no_knee() -> None:
    """Before: --rate 1..16 marked r=8 as the knee while throughput doubled again at r=16 with flat latency."""
    rising = [_level(rate, 100 * rate, 1000 + rate, open_loop=True) for rate in (1, 2, 4, 8, 16)]
    rising[3] = _level(8, 760, 1050, open_loop=True)  # a dip that makes a kneedle "knee"
    assert sweep_knee(rising) is None


def test_a_saturating_sweep_has_its_knee_and_invalid_levels_are_left_out() -> None:
    levels = [_level(c, t, e) for c, t, e in ((1, 100, 1000), (4, 390, 1050), (16, 1400, 1200), (32, 1500, 2300),
                                              (64, 1520, 4500))]  # fmt: skip
    assert sweep_knee(levels) == 2
    levels[2] = _level(16, 1400, 1200, valid=False)
    assert sweep_knee(levels) != 2
