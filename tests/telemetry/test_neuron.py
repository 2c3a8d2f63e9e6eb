import json
import sys
import time
from pathlib import Path

import pytest

from loadgen.telemetry.model import SourceUnavailable
from loadgen.telemetry.neuron import NeuronMonitorSource, monitor_config, parse_neuron_report

FIXTURES = Path(__file__).parent / "fixtures" / "neuron_reports.jsonl"
REPORTS = [json.loads(line) for line in FIXTURES.read_text().splitlines()]


def by_device(samples: list) -> dict:  # type: ignore[type-arg]
    return {(sample.source, sample.device): sample.values for sample in samples}


def test_full_report_per_core_runtime_and_system() -> None:
    parsed = parse_neuron_report(REPORTS[0], t_ns=42)
    assert parsed.errors == []
    samples = by_device(parsed.samples)
    assert samples[("neuron", "nc0")] == {"core_util_percent": 89.4, "flops": 875590474948.0}
    assert samples[("neuron", "nc1")] == {"core_util_percent": 0.0}
    runtime = samples[("neuron", "pid2199")]
    assert runtime["device_memory_used_bytes"] == 12519788544
    assert runtime["host_memory_used_bytes"] == 6997643264
    assert runtime["runtime_vcpu_percent"] == pytest.approx(54.35)
    assert runtime["executions_completed"] == 123 and runtime["executions_failed"] == 1
    assert runtime["execution_latency_p50_ms"] == pytest.approx(11.2)
    assert runtime["execution_latency_p99_ms"] == pytest.approx(20.0)
    system = samples[("neuron_system", "")]
    assert system["vcpu_busy_percent"] == pytest.approx(55.64)
    assert system["memory_used_bytes"] == 11233579008
    assert system["neuron_device_memory_bytes"] == 34359738368
    assert all(sample.t_ns == 42 for sample in parsed.samples)


def test_groups_and_runtimes_with_errors_are_skipped_and_reported() -> None:
    parsed = parse_neuron_report(REPORTS[1], t_ns=1)
    samples = by_device(parsed.samples)
    assert samples == {("neuron", "nc0"): {"core_util_percent": 91.0}}
    assert parsed.errors == [
        "pid2199 memory_used: cannot read runtime memory",
        "pid3000: runtime not responding",
        "system vcpu_usage: open /proc/stat: permission denied",
    ]


@pytest.mark.parametrize("report", [{}, [], "text", {"neuron_runtime_data": None, "system_data": None}])
def test_missing_groups_and_malformed_reports(report: object) -> None:
    parsed = parse_neuron_report(report, t_ns=0)
    assert parsed.samples == []


def test_generated_config() -> None:
    config = monitor_config(0.25)
    assert config["period"] == "1s"
    metric_types = {m["type"] for m in config["neuron_runtimes"][0]["metrics"]}  # type: ignore[index]
    assert metric_types == {"neuroncore_counters", "memory_used", "neuron_runtime_vcpu_usage", "execution_stats"}


def test_monitor_subprocess_is_read_and_stamped(tmp_path: Path) -> None:
    fake = tmp_path / "fake_neuron_monitor.py"
    fake.write_text(
        "import sys, time\n"
        "assert sys.argv[1] == '-c'\n"
        f"lines = open({str(FIXTURES)!r}).read().splitlines()\n"
        "for line in lines:\n"
        "    print(line, flush=True)\n"
        "    time.sleep(0.05)\n"
        "print('not json', flush=True)\n"
        "time.sleep(30)\n"
    )
    ticks = iter(range(1_000, 10**9, 1_000))
    source = NeuronMonitorSource(command=(sys.executable, str(fake)), clock=lambda: next(ticks))
    source.open()
    try:
        samples = []
        deadline = time.monotonic() + 60  # waits for the lines, not for a time
        while time.monotonic() < deadline:
            samples += source.read(0)
            if any("not JSON" in error for error in source.errors):  # after every data line
                break
            time.sleep(0.02)
    finally:
        source.close()
    assert {(s.source, s.device) for s in samples} >= {("neuron", "nc0"), ("neuron", "pid2199"), ("neuron_system", "")}
    assert all(s.t_ns >= 1_000 for s in samples)  # stamped by the reader, on arrival
    assert any("not JSON" in error for error in source.errors)


def test_missing_binary_is_unavailable() -> None:
    with pytest.raises(SourceUnavailable, match="not found on PATH"):
        NeuronMonitorSource(command=("neuron-monitor-that-does-not-exist",)).open()
