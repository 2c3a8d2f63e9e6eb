"""Engine layer: splitting one load over worker processes so that together they issue exactly the
load one process would have.

Open loop: every worker computes the same seeded schedule and sends arrivals i ≡ k (mod n) — the
schedule is computed once in effect and dealt out, not n independent Poisson streams at R/n (which
would have the same statistics but not the same arrival times, so runs could not be compared
request for request). Closed loop: users k, k + n, … run in worker k. Request and warm-up counts
split the same way: worker k gets the indices i ≡ k (mod n).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from loadgen.config import LoadConfig, LoadMode, Stage


def share_of(total: int, worker: int, workers: int) -> int:
    """How many of the indices 0 … total − 1 are ≡ worker (mod workers)."""
    return max(0, (total - worker + workers - 1) // workers)


def partition(load: LoadConfig, worker: int, workers: int) -> LoadConfig:
    if workers == 1:
        return load
    warmup = share_of(load.warmup_requests, worker, workers)
    # measured requests are the split load's indices warmup … warmup + requests − 1
    requests = None
    if load.requests is not None:
        requests = share_of(load.warmup_requests + load.requests, worker, workers) - warmup
    changes: dict[str, Any] = {
        "worker_index": worker, "worker_count": workers, "warmup_requests": warmup, "requests": requests,
    }  # fmt: skip
    if load.mode is LoadMode.CLOSED:
        changes["concurrency"] = share_of(load.concurrency, worker, workers)
        if load.stages:
            changes["stages"] = tuple(Stage(s.duration_s, s.target / workers) for s in load.stages)
    return dataclasses.replace(load, **changes)


OPEN_LOOP_RPS_PER_WORKER = 2000  # held with sub-millisecond p99 lag on a 2-core box (loadgen selftest)
USERS_PER_WORKER = 256


def default_workers(load: LoadConfig, cpus: int) -> int:
    """Enough worker processes for the load, at most one per CPU."""
    if load.mode is LoadMode.OPEN:
        peak = max([load.rate_rps or 0.0, *(stage.target for stage in load.stages)])
        wanted = -(-peak // OPEN_LOOP_RPS_PER_WORKER)
    else:
        peak_users = max([load.concurrency, *(stage.target for stage in load.stages)])
        wanted = -(-peak_users // USERS_PER_WORKER)
    return int(max(1, min(cpus, wanted)))
