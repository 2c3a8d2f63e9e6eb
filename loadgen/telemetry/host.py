"""Telemetry layer: the host (CPU per core, memory, network) and the loadgen process itself
(CPU, RSS), through psutil."""

from __future__ import annotations

import psutil

from loadgen.telemetry.model import Sample


class HostSource:
    name = "host"

    def __init__(self) -> None:
        self._last_net: tuple[int, float, float] | None = None

    def open(self) -> None:
        psutil.cpu_percent(percpu=True)

    def read(self, t_ns: int) -> list[Sample]:
        per_core = psutil.cpu_percent(percpu=True)
        memory = psutil.virtual_memory()
        values: dict[str, float] = {
            "cpu_percent": sum(per_core) / len(per_core) if per_core else 0.0,
            "memory_used_bytes": float(memory.total - memory.available),
            "memory_total_bytes": float(memory.total),
        }
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
    """This process: what the load generator itself costs."""

    name = "process"

    def __init__(self) -> None:
        self._process = psutil.Process()

    def open(self) -> None:
        self._process.cpu_percent(None)

    def read(self, t_ns: int) -> list[Sample]:
        with self._process.oneshot():
            values = {
                "cpu_percent": self._process.cpu_percent(None),
                "rss_bytes": float(self._process.memory_info().rss),
                "threads": float(self._process.num_threads()),
            }
        return [Sample(t_ns, self.name, "", values)]

    def close(self) -> None:
        return None
