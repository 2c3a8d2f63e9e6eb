"""Telemetry layer: the host (CPU per core, memory, network) and the loadgen process itself
(CPU, RSS), through psutil.

CPU percentages are rates over the time since the previous reading; a reading less than
``MIN_RATE_INTERVAL_NS`` after the previous one has no CPU figure (over a few milliseconds the
kernel's tick-based CPU times make the rate meaningless).
"""

from __future__ import annotations

import time

import psutil

from loadgen.telemetry.model import Sample

MIN_RATE_INTERVAL_NS = 100_000_000


class HostSource:
    name = "host"

    def __init__(self) -> None:
        self._last_net: tuple[int, float, float] | None = None
        self._last_cpu_ns = 0

    def open(self) -> None:
        psutil.cpu_percent(percpu=True)
        self._last_cpu_ns = time.perf_counter_ns()

    def read(self, t_ns: int) -> list[Sample]:
        memory = psutil.virtual_memory()
        values: dict[str, float] = {
            "memory_used_bytes": float(memory.total - memory.available),
            "memory_total_bytes": float(memory.total),
        }
        if t_ns - self._last_cpu_ns >= MIN_RATE_INTERVAL_NS:
            per_core = psutil.cpu_percent(percpu=True)
            self._last_cpu_ns = t_ns
            values["cpu_percent"] = sum(per_core) / len(per_core) if per_core else 0.0
            for core, percent in enumerate(per_core):
                values[f"cpu{core}_percent"] = percent
        net = psutil.net_io_counters()
        if net is not None:
            sent, received = float(net.bytes_sent), float(net.bytes_recv)
            if self._last_net is not None:
                last_t, last_sent, last_received = self._last_net
                seconds = (t_ns - last_t) / 1e9
                if seconds > 0:
                    values["net_sent_bytes_per_s"] = (sent - last_sent) / seconds
                    values["net_recv_bytes_per_s"] = (received - last_received) / seconds
            self._last_net = (t_ns, sent, received)
        return [Sample(t_ns, self.name, "", values)]

    def close(self) -> None:
        return None


class ProcessSource:
    """The load generator's process (by default this one): what the client itself costs."""

    name = "process"

    def __init__(self, pid: int | None = None) -> None:
        self._process = psutil.Process(pid)
        self._last: tuple[int, float] | None = None

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def open(self) -> None:
        self._last = (time.perf_counter_ns(), self._cpu_seconds())

    def read(self, t_ns: int) -> list[Sample]:
        with self._process.oneshot():
            values = {
                "rss_bytes": float(self._process.memory_info().rss),
                "threads": float(self._process.num_threads()),
            }
            cpu_s = self._cpu_seconds()
        if self._last is not None and t_ns - self._last[0] >= MIN_RATE_INTERVAL_NS:
            values["cpu_percent"] = 100.0 * (cpu_s - self._last[1]) / ((t_ns - self._last[0]) / 1e9)
            self._last = (t_ns, cpu_s)
        return [Sample(t_ns, self.name, "", values)]

    def close(self) -> None:
        return None
