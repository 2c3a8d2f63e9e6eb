"""Telemetry layer: AWS Inferentia/Trainium through ``neuron-monitor``.

neuron-monitor streams one JSON report per line (AWS Neuron docs, "Neuron Monitor User Guide"):
``neuron_runtime_data[]`` (one entry per Neuron application: ``pid``, ``error``, ``report`` with the
metric groups ``neuroncore_counters``, ``execution_stats``, ``memory_used``,
``neuron_runtime_vcpu_usage``), ``system_data`` (``vcpu_usage``, ``memory_info``) and
``neuron_hardware_info``. Every metric group carries ``period`` and ``error``; a group or runtime
with an error is skipped and its error reported.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.telemetry.model import Sample, SourceUnavailable

RUNTIME_GROUPS = ("neuroncore_counters", "memory_used", "neuron_runtime_vcpu_usage", "execution_stats")
SYSTEM_GROUPS = ("vcpu_usage", "memory_info")


@dataclass
class ParsedReport:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_neuron_report(report: Any, t_ns: int) -> ParsedReport:
    """One neuron-monitor report → samples (``neuron`` per NeuronCore and per runtime,
    ``neuron_system`` for the host side), plus the errors the report itself contains."""
    parsed = ParsedReport()
    if not isinstance(report, dict):
        parsed.errors.append("report is not a JSON object")
        return parsed
    for position, runtime in enumerate(report.get("neuron_runtime_data") or ()):
        if not isinstance(runtime, dict):
            continue
        label = f"pid{runtime.get('pid')}" if runtime.get("pid") is not None else f"runtime{position}"
        if runtime.get("error"):
            parsed.errors.append(f"{label}: {runtime['error']}")
            continue
        _parse_runtime(runtime.get("report") or {}, label, t_ns, parsed)
    system = report.get("system_data") or {}
    values: dict[str, float] = {}
    vcpu = _group(system, "vcpu_usage", "system", parsed)
    if vcpu:
        average = vcpu.get("average_usage") or {}
        values["vcpu_busy_percent"] = float(average.get("user", 0)) + float(average.get("system", 0))
    memory = _group(system, "memory_info", "system", parsed)
    if memory and "memory_used_bytes" in memory:
        values["memory_used_bytes"] = float(memory["memory_used_bytes"])
        values["memory_total_bytes"] = float(memory.get("memory_total_bytes", 0))
    hardware = report.get("neuron_hardware_info") or {}
    if isinstance(hardware, dict) and not hardware.get("error") and "neuron_device_memory_size" in hardware:
        values["neuron_devices"] = float(hardware.get("neuron_device_count", 0))
        values["neuron_device_memory_bytes"] = float(hardware["neuron_device_memory_size"])
    if values:
        parsed.samples.append(Sample(t_ns, "neuron_system", "", values))
    return parsed


def _group(container: dict[str, Any], name: str, label: str, parsed: ParsedReport) -> dict[str, Any] | None:
    group = container.get(name)
    if not isinstance(group, dict):
        return None
    if group.get("error"):
        parsed.errors.append(f"{label} {name}: {group['error']}")
        return None
    return group


def _parse_runtime(report: dict[str, Any], label: str, t_ns: int, parsed: ParsedReport) -> None:
    counters = _group(report, "neuroncore_counters", label, parsed)
    if counters:
        for core, data in (counters.get("neuroncores_in_use") or {}).items():
            if isinstance(data, dict) and "neuroncore_utilization" in data:
                core_values = {"core_util_percent": float(data["neuroncore_utilization"])}
                flops = data["flops"] if "flops" in data else data.get("effective_flops")
                if flops is not None:
                    core_values["flops"] = float(flops)
                parsed.samples.append(Sample(t_ns, "neuron", f"nc{core}", core_values))
    values: dict[str, float] = {}
    memory = _group(report, "memory_used", label, parsed)
    if memory:
        used = memory.get("neuron_runtime_used_bytes") or {}
        if isinstance(used, dict):
            if "neuron_device" in used:
                values["device_memory_used_bytes"] = float(used["neuron_device"])
            if "host" in used:
                values["host_memory_used_bytes"] = float(used["host"])
    vcpu = _group(report, "neuron_runtime_vcpu_usage", label, parsed)
    if vcpu:
        usage = vcpu.get("vcpu_usage") or {}
        if isinstance(usage, dict):
            values["runtime_vcpu_percent"] = float(usage.get("user", 0)) + float(usage.get("system", 0))
    stats = _group(report, "execution_stats", label, parsed)
    if stats:
        summary = stats.get("execution_summary") or {}
        if isinstance(summary, dict):
            values["executions_completed"] = float(summary.get("completed", 0))
            values["executions_failed"] = float(
                sum(float(count) for key, count in summary.items() if key != "completed")
            )
        latency = (stats.get("latency_stats") or {}).get("total_latency")
        if isinstance(latency, dict):
            for key in ("p50", "p99"):
                if key in latency:
                    values[f"execution_latency_{key}_ms"] = float(latency[key]) * 1000.0
    if values:
        parsed.samples.append(Sample(t_ns, "neuron", label, values))


def monitor_config(period_s: float) -> dict[str, Any]:
    period = f"{max(1, round(period_s))}s"
    return {
        "period": period,
        "neuron_runtimes": [{"tag_filter": ".*", "metrics": [{"type": group} for group in RUNTIME_GROUPS]}],
        "system_metrics": [{"type": group} for group in SYSTEM_GROUPS],
    }


class NeuronMonitorSource:
    """Runs neuron-monitor as a child process; a reader thread stamps each report on arrival."""

    name = "neuron"

    def __init__(
        self,
        period_s: float = 1.0,
        command: tuple[str, ...] = ("neuron-monitor",),
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self._period_s = period_s
        self._command = command
        self._clock = clock
        self._reports: deque[ParsedReport] = deque(maxlen=10_000)
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._config_dir: tempfile.TemporaryDirectory[str] | None = None
        self.errors: list[str] = []

    def open(self) -> None:
        if shutil.which(self._command[0]) is None:
            raise SourceUnavailable(f"{self._command[0]} not found on PATH (it ships in aws-neuronx-tools)")
        self._config_dir = tempfile.TemporaryDirectory(prefix="loadgen-neuron-")
        config = Path(self._config_dir.name) / "monitor.json"
        config.write_text(json.dumps(monitor_config(self._period_s)))
        self._process = subprocess.Popen(
            [*self._command, "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._thread = threading.Thread(target=self._read_lines, name="loadgen-neuron-monitor", daemon=True)
        self._thread.start()

    def _read_lines(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            t_ns = self._clock()
            try:
                report = json.loads(line)
            except ValueError:
                self.errors.append(f"not JSON: {line[:80]!r}")
                continue
            self._reports.append(parse_neuron_report(report, t_ns))

    def read(self, t_ns: int) -> list[Sample]:
        samples: list[Sample] = []
        while self._reports:
            parsed = self._reports.popleft()
            samples += parsed.samples
            self.errors += parsed.errors
        process = self._process
        if not samples and process is not None and process.poll() is not None:
            stderr = process.stderr.read().strip() if process.stderr else ""
            raise SourceUnavailable(f"neuron-monitor exited with {process.returncode}: {stderr[:200]}")
        return samples

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        if self._thread is not None:
            self._thread.join(5)
        if self._config_dir is not None:
            self._config_dir.cleanup()
