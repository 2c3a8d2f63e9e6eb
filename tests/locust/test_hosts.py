"""Locust's master and workers on separate hosts: network namespaces with private addresses
(``tests/netns.py``), the server on one, the master on another, a worker on each of two more.

The master's merged HDR figures must equal those of the union of the workers' own records; a
worker killed mid-test must be noticed, the result marked partial with the other worker's data
kept, and the master must exit non-zero."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadgen.metrics.aggregate import Aggregator
from loadgen.metrics.results import Distribution
from loadgen.records import RequestRecord
from tests import netns

SERVER_PORT = "8000"
MASTER_PORT = "5557"
LOADGEN = [sys.executable, "-m", "loadgen", "locust"]


@pytest.fixture
def network() -> Iterator[dict[str, netns.Host]]:
    reason = netns.skip_reason()
    if reason is not None:
        pytest.skip(reason)  # pytest -ra prints it: CI runs as root and should not see it
    with netns.hosts("server", "master", "worker1", "worker2") as hosts:
        yield hosts


def start_server(host: netns.Host) -> str:
    sim = host.start([sys.executable, "-m", "loadgen.sim", "--profile", "fixed:20,5", "--host", host.address,
                      "--port", SERVER_PORT], stdout=subprocess.PIPE)  # fmt: skip
    assert sim.stdout is not None
    line = sim.stdout.readline().decode()
    assert line.startswith("PORT"), line
    return f"http://{host.address}:{SERVER_PORT}"


def start_test(hosts: dict[str, netns.Host], url: str, output: Path, run_time: str) -> list[subprocess.Popen[bytes]]:
    common = ["--endpoint", url, "--max-tokens", "8"]
    master = hosts["master"].start(
        [*LOADGEN, "--headless", "--master", "--master-bind-host", hosts["master"].address, "--master-bind-port",
         MASTER_PORT, "--expect-workers", "2", "--users", "4", "--run-time", run_time,
         "--output", str(output / "master"), *common],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    worker = [*LOADGEN, "--worker", "--master-host", hosts["master"].address, "--master-port", MASTER_PORT, *common]
    workers = [
        hosts[name].start(
            [*worker, "--output", str(output / name)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for name in ("worker1", "worker2")
    ]
    return [master, *workers]


def records(directory: Path) -> list[dict[str, Any]]:
    files = list(directory.glob("worker-*/requests.jsonl"))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines() if line.endswith("}")]


def union_summary_figures(worker_records: list[dict[str, Any]]) -> dict[str, Any]:
    aggregator = Aggregator()
    for record in worker_records:
        aggregator.on_record(RequestRecord.from_json_dict(record))
    aggregator.flush()
    return {name: Distribution.of(aggregator.totals[name].stats()).to_json() for name in ("ttft", "itl", "tpot", "e2e")}


def test_master_and_workers_on_separate_hosts(network: dict[str, netns.Host], tmp_path: Path) -> None:
    url = start_server(network["server"])

    # a whole test: the master's figures are exactly those of the workers' records together
    master, *workers = start_test(network, url, tmp_path / "whole", "6s")
    output, _ = master.communicate(timeout=120)
    log = output.decode("utf-8", "replace")
    assert master.returncode == 0, log[-3000:]
    for worker in workers:
        worker.wait(timeout=30)
    summary = json.loads((tmp_path / "whole" / "master" / "summary.json").read_text())
    union = [record for name in ("worker1", "worker2") for record in records(tmp_path / "whole" / name)]
    assert all(records(tmp_path / "whole" / name) for name in ("worker1", "worker2"))  # both sent load
    ok = [record for record in union if record["error_kind"] is None]
    assert summary["requests"]["completed"] == len(ok) > 20
    assert summary["tokens"]["output_total"] == sum(record["output_tokens"] for record in ok)
    assert summary["partial"] is False and summary["locust"]["processes"] == 2
    for metric, stats in union_summary_figures(union).items():
        merged = summary["latency_ms"][metric]
        assert {key: merged[key] for key in stats} == stats, metric
    assert "loadgen: " in log and "TTFT p50" in log  # the headless progress line, beside Locust's stats

    # a worker killed mid-test: noticed, the result partial, the other worker's data kept, exit non-zero
    master, worker1, worker2 = start_test(network, url, tmp_path / "lost", "14s")
    deadline = time.monotonic() + 60
    while not list((tmp_path / "lost" / "worker2").glob("worker-*/requests.jsonl")) or not any(
        path.stat().st_size for path in (tmp_path / "lost" / "worker2").glob("worker-*/requests.jsonl")
    ):
        assert time.monotonic() < deadline, "worker2 never sent a request"
        time.sleep(0.2)
    time.sleep(4)  # past a report or two to the master
    netns.kill(worker2)
    output, _ = master.communicate(timeout=120)
    log = output.decode("utf-8", "replace")
    assert master.returncode != 0, log[-3000:]
    assert "was lost mid-test" in log, log[-3000:]
    worker1.wait(timeout=30)
    summary = json.loads((tmp_path / "lost" / "master" / "summary.json").read_text())
    assert summary["partial"] is True and summary["stop_reason"] == "worker_lost"
    assert len(summary["locust"]["lost_workers"]) == 1
    kept = [record for record in records(tmp_path / "lost" / "worker1") if record["error_kind"] is None]
    assert summary["requests"]["completed"] > len(kept) > 20  # all of worker1's, and worker2's until it died
