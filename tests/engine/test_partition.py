import pytest

from loadgen.config import LoadConfig, LoadMode
from loadgen.engine.partition import partition, share_of


@pytest.mark.parametrize("total, workers", [(0, 2), (1, 3), (7, 2), (10, 4), (64, 3)])
def test_shares_add_up(total: int, workers: int) -> None:
    shares = [share_of(total, k, workers) for k in range(workers)]
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1


def test_partitioned_counts_add_up_to_the_whole_load() -> None:
    load = LoadConfig(mode=LoadMode.CLOSED, concurrency=5, requests=21, warmup_requests=3)
    parts = [partition(load, k, 2) for k in range(2)]
    assert sum(p.concurrency for p in parts) == 5
    assert sum(p.requests or 0 for p in parts) == 21
    assert sum(p.warmup_requests for p in parts) == 3
    assert [(p.worker_index, p.worker_count) for p in parts] == [(0, 2), (1, 2)]
    assert partition(load, 0, 1) is load


def test_default_workers_follow_the_load_up_to_the_cpus() -> None:
    from loadgen.config import Stage
    from loadgen.engine.partition import default_workers

    assert default_workers(LoadConfig(mode=LoadMode.CLOSED, concurrency=64), cpus=8) == 1
    assert default_workers(LoadConfig(mode=LoadMode.CLOSED, concurrency=600), cpus=8) == 3
    assert default_workers(LoadConfig(mode=LoadMode.OPEN, rate_rps=5000), cpus=2) == 2
    assert default_workers(LoadConfig(mode=LoadMode.OPEN, rate_rps=100), cpus=8) == 1
    staged = LoadConfig(mode=LoadMode.OPEN, rate_rps=1, stages=(Stage(1, 1), Stage(1, 4500)))
    assert default_workers(staged, cpus=16) == 3
