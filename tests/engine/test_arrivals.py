import itertools
import statistics

import pytest

from loadgen.config import Arrival
from loadgen.engine.arrivals import arrival_gaps_ns


def sample(arrival: Arrival, rate: float, n: int = 20000, seed: int = 7, burstiness: float = 1.0) -> list[int]:
    return list(itertools.islice(arrival_gaps_ns(arrival, rate, seed, burstiness), n))


def test_constant_rate_has_no_drift() -> None:
    gaps = sample(Arrival.CONSTANT, rate=3.0, n=3000)
    assert sum(gaps) == 1_000_000_000 * 1000  # exactly 1000 s for 3000 arrivals at 3/s
    assert max(gaps) - min(gaps) <= 1


def test_poisson_mean_and_coefficient_of_variation() -> None:
    gaps = sample(Arrival.POISSON, rate=100.0)
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1e7, rel=0.03)  # 10 ms; 20k samples → ~0.7 % standard error
    assert statistics.pstdev(gaps) / mean == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_gamma_keeps_the_rate_and_changes_the_spread(burstiness: float) -> None:
    gaps = sample(Arrival.GAMMA, rate=50.0, burstiness=burstiness)
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(2e7, rel=0.05)
    # the gamma distribution's coefficient of variation is 1 / sqrt(shape)
    assert statistics.pstdev(gaps) / mean == pytest.approx(burstiness**-0.5, rel=0.08)


def test_seeded_and_reproducible() -> None:
    assert sample(Arrival.POISSON, 10, n=50, seed=1) == sample(Arrival.POISSON, 10, n=50, seed=1)
    assert sample(Arrival.POISSON, 10, n=50, seed=1) != sample(Arrival.POISSON, 10, n=50, seed=2)


def test_poisson_counts_per_window_match_the_rate() -> None:
    # arrivals in 1-second windows at 20/s should have mean 20 and variance 20 (Poisson)
    times = list(itertools.accumulate(sample(Arrival.POISSON, 20.0, n=40000, seed=3)))
    windows = [0] * int(times[-1] // 1e9)
    for t in times:
        index = int(t // 1e9)
        if index < len(windows):
            windows[index] += 1
    assert statistics.fmean(windows) == pytest.approx(20, rel=0.03)
    assert statistics.pvariance(windows) == pytest.approx(20, rel=0.15)
