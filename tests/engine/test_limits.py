"""A load that cannot fit this process stops before it starts, with one line."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from loadgen.config import LoadConfig, LoadMode
from loadgen.engine import limits
from loadgen.errors import ConfigError


@pytest.fixture
def soft_file_limit() -> Iterator[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_soft_file_limit_is_raised_when_the_hard_one_allows(soft_file_limit: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    users = min(1000, hard - limits.FILES_SPARE) if hard != resource.RLIM_INFINITY else 1000
    limits.check_load_fits([LoadConfig(concurrency=users, requests=1)])
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= users + limits.FILES_SPARE


def test_more_users_than_files_is_one_line_naming_the_limit(soft_file_limit: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    too_many = 10**9 if hard == resource.RLIM_INFINITY else hard + 1
    with pytest.raises(ConfigError, match=r"open files per process.*ulimit -n"):
        limits.check_load_fits([LoadConfig(concurrency=too_many, requests=1)])
    # an open loop without --max-inflight has no bound to check in advance
    unbounded = LoadConfig(mode=LoadMode.OPEN, rate_rps=5, duration_s=1)
    assert 1 <= limits.concurrent_requests(unbounded) == limits.open_loop_inflight() <= limits.OPEN_LOOP_INFLIGHT


def test_a_load_over_half_the_memory_is_refused(monkeypatch: pytest.MonkeyPatch, soft_file_limit: int) -> None:
    class Memory:
        available = 64 * 1024 * 1024

    monkeypatch.setattr(limits.psutil, "virtual_memory", lambda: Memory())
    with pytest.raises(ConfigError, match="GiB"):
        limits.check_load_fits([LoadConfig(concurrency=1000, requests=1)])
    limits.check_load_fits([LoadConfig(concurrency=100, requests=1)])
