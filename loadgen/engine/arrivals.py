"""Engine layer: open-loop arrival processes, as seeded streams of inter-arrival gaps in ns.

- constant: every 1/rate seconds.
- poisson: exponential gaps with mean 1/rate.
- gamma: gamma gaps with shape ``burstiness`` and mean 1/rate; burstiness 1 is Poisson,
  below 1 burstier (more clumped), above 1 more regular.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from loadgen.config import Arrival, Stage


def arrival_gaps_ns(arrival: Arrival, rate_rps: float, seed: int, burstiness: float = 1.0) -> Iterator[int]:
    if rate_rps <= 0:
        raise ValueError("rate must be positive")
    mean_s = 1.0 / rate_rps
    rng = random.Random(seed)
    if arrival is Arrival.CONSTANT:
        # Accumulate in float time so rounding to whole nanoseconds does not drift the rate.
        position_s = 0.0
        previous_ns = 0
        while True:
            position_s += mean_s
            next_ns = round(position_s * 1e9)
            yield next_ns - previous_ns
            previous_ns = next_ns
    elif arrival is Arrival.POISSON:
        while True:
            yield round(rng.expovariate(rate_rps) * 1e9)
    elif arrival is Arrival.GAMMA:
        if burstiness <= 0:
            raise ValueError("burstiness must be positive")
        scale_s = mean_s / burstiness
        while True:
            yield round(rng.gammavariate(burstiness, scale_s) * 1e9)
    else:
        raise ValueError(f"unknown arrival process {arrival!r}")


def stage_target(stages: tuple[Stage, ...], t_s: float) -> float:
    """The target at ``t_s`` seconds: linear within each stage from the previous stage's target."""
    start_s, previous = 0.0, 0.0
    for stage in stages:
        if t_s < start_s + stage.duration_s:
            fraction = (t_s - start_s) / stage.duration_s if stage.duration_s > 0 else 1.0
            return previous + fraction * (stage.target - previous)
        start_s += stage.duration_s
        previous = stage.target
    return previous


def staged_arrival_offsets_ns(stages: tuple[Stage, ...], seed: int) -> Iterator[int]:
    """Poisson arrivals whose rate follows the stages (a non-homogeneous Poisson process, drawn by
    thinning: candidates at the peak rate, each kept with probability rate(t) / peak)."""
    peak = max((stage.target for stage in stages), default=0.0)
    total_s = sum(stage.duration_s for stage in stages)
    if peak <= 0:
        return
    rng = random.Random(seed)
    t_s = 0.0
    while True:
        t_s += rng.expovariate(peak)
        if t_s >= total_s:
            return
        if rng.random() * peak < stage_target(stages, t_s):
            yield round(t_s * 1e9)
