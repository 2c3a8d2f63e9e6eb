"""Engine layer: the client self-check. Samples this process's CPU while the load runs.

A load generator that is itself out of CPU delays reads and sends, which inflates every latency it
reports. When the process stays above ``CPU_LIMIT_PERCENT`` of one core for
``SUSTAINED_SAMPLES`` samples in a row, the run is marked ``client.saturated`` and a warning is
raised (the schedule-lag check is added by the summary).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import psutil

CPU_LIMIT_PERCENT = 90.0
SUSTAINED_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class ClientReport:
    cpu_percent_mean: float | None
    cpu_percent_max: float | None
    cpu_saturated: bool
    rss_bytes_max: int | None
    host_cpu_percent_max: float | None = None  # the whole machine's, all cores (100 = every core busy)


class ClientMonitor:
    def __init__(self, interval_s: float = 1.0, on_warning: Callable[[str], None] | None = None) -> None:
        self._interval_s = interval_s
        self._on_warning = on_warning
        self._process = psutil.Process()
        self._samples: list[float] = []
        self._host_samples: list[float] = []
        self._rss_max = 0
        self._streak = 0
        self._started = False
        self.saturated = False

    async def run(self) -> None:
        self._process.cpu_percent(None)
        psutil.cpu_percent(None)
        self._started = True
        while True:
            await asyncio.sleep(self._interval_s)
            self.sample()

    def sample(self) -> None:
        cpu = self._process.cpu_percent(None)
        self._samples.append(cpu)
        self._host_samples.append(psutil.cpu_percent(None))
        self._rss_max = max(self._rss_max, self._process.memory_info().rss)
        self._streak = self._streak + 1 if cpu >= CPU_LIMIT_PERCENT else 0
        if self._streak >= SUSTAINED_SAMPLES and not self.saturated:
            self.saturated = True
            if self._on_warning is not None:
                self._on_warning(
                    f"loadgen itself is using {cpu:.0f}% of a CPU core: latencies may include client "
                    "delay (use fewer users or more worker processes)"
                )

    def report(self) -> ClientReport:
        if not self._samples and self._started:
            self.sample()  # a level shorter than one interval: its CPU over the whole level
        samples = self._samples
        return ClientReport(
            cpu_percent_mean=round(sum(samples) / len(samples), 1) if samples else None,
            cpu_percent_max=round(max(samples), 1) if samples else None,
            cpu_saturated=self.saturated,
            rss_bytes_max=self._rss_max or None,
            host_cpu_percent_max=round(max(self._host_samples), 1) if self._host_samples else None,
        )
