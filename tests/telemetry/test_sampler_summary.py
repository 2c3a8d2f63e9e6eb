import time
from typing import Any

import msgspec
import pytest

from loadgen.telemetry import summary as telemetry_summary
from loadgen.telemetry.model import Sample, SourceUnavailable
from loadgen.telemetry.sampler import Sampler


def summarize_window(samples: list[Sample], output_tokens: int) -> dict[str, Any]:
    """The figures as ``summary.json`` writes them."""
    figures: dict[str, Any] = msgspec.to_builtins(telemetry_summary.summarize_window(samples, output_tokens))
    return figures


S = 1_000_000_000


class CountingSource:
    name = "fake"

    def __init__(self, fail_every: int = 0) -> None:
        self.reads = 0
        self.fail_every = fail_every

    def open(self) -> None:
        return None

    def read(self, t_ns: int) -> list[Sample]:
        self.reads += 1
        if self.fail_every and self.reads % self.fail_every == 0:
            raise RuntimeError("flaky")
        return [Sample(t_ns, self.name, "", {"n": float(self.reads)})]

    def close(self) -> None:
        return None


class BrokenSource(CountingSource):
    name = "broken"

    def open(self) -> None:
        raise SourceUnavailable("no such device")


def test_sampler_polls_counts_errors_and_reports_unavailable_sources() -> None:
    seen: list[Sample] = []
    source = CountingSource(fail_every=3)
    sampler = Sampler([source, BrokenSource()], interval_s=0.01, sink=seen.append)
    assert sampler.start() == {"broken": "no such device"}
    deadline = time.monotonic() + 60  # waits for polls, not for a time: a busy machine polls late
    while sampler.stats().polls < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.sample_now()
    sampler.stop()
    stats = sampler.stats()
    assert stats.polls >= 5
    assert stats.errors == {"fake": source.reads // 3}
    assert len(seen) == stats.samples == source.reads - source.reads // 3
    assert stats.cpu_percent_of_core is not None and stats.cpu_percent_of_core < 50
    first, last = seen[0].t_ns, seen[-1].t_ns
    assert sampler.window(first, first) == [seen[0]]
    assert len(sampler.window(first, last)) == len(seen)


def gpu(t_s: float, **values: float) -> Sample:
    return Sample(round(t_s * S), "gpu", "0", values)


def test_energy_from_the_counter_per_output_token() -> None:
    samples = [gpu(0, energy_j=1000.0, power_w=300, gpu_util_percent=50),
               gpu(1, energy_j=1300.0, power_w=300, gpu_util_percent=100),
               gpu(2, energy_j=1700.0, power_w=400, gpu_util_percent=90)]  # fmt: skip
    summary = summarize_window(samples, output_tokens=1000)
    assert summary["energy_j"] == 700.0
    assert summary["energy_method"] == "energy_counter"
    assert summary["joules_per_output_token"] == pytest.approx(0.7)
    assert summary["output_tokens_per_joule"] == pytest.approx(1000 / 700)
    assert summary["gpu"]["0"]["util_percent"] == {"mean": 80.0, "max": 100.0}  # type: ignore[index]


def test_energy_from_power_when_there_is_no_counter() -> None:
    samples = [gpu(0, power_w=100), gpu(1, power_w=300), gpu(3, power_w=300)]
    summary = summarize_window(samples, output_tokens=10)
    assert summary["energy_j"] == pytest.approx(200 + 600)  # trapezoids: (100+300)/2·1 + 300·2
    assert summary["energy_method"] == "power_integral"


def test_server_figures_over_the_window() -> None:
    def server(t_s: float, **values: float) -> Sample:
        return Sample(round(t_s * S), "server", "", values)

    samples = [server(0, requests_running=2, requests_waiting=0, kv_cache_usage=0.1, spec_draft_tokens_total=100,
                      spec_accepted_tokens_total=50, executions_total=10, requests_succeeded_total=20),
               server(1, requests_running=6, requests_waiting=4, kv_cache_usage=0.6, spec_draft_tokens_total=500,
                      spec_accepted_tokens_total=290, executions_total=30, requests_succeeded_total=100)]  # fmt: skip
    figures = summarize_window(samples, output_tokens=0)["server"]
    assert figures["requests_running"] == {"mean": 4.0, "max": 6.0}  # type: ignore[index]
    assert figures["kv_cache_usage_percent"] == {"mean": 35.0, "max": 60.0}  # type: ignore[index]
    assert figures["spec_acceptance_rate"] == pytest.approx(240 / 400)  # type: ignore[index]
    assert figures["average_batch_size"] == pytest.approx(80 / 20)  # type: ignore[index]


def test_nvlink_counter_becomes_a_rate() -> None:
    samples = [gpu(0, nvlink_tx_bytes_total=1e9), gpu(2, nvlink_tx_bytes_total=5e9)]
    assert summarize_window(samples, 0)["gpu"]["0"]["nvlink_tx_bytes_per_s"] == 2e9  # type: ignore[index]
