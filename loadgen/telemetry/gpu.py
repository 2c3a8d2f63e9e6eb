"""Telemetry layer: NVIDIA GPUs through NVML (``nvidia-ml-py``, imported as ``pynvml``).

Per device: GPU and memory-controller utilisation, memory used/total, power, the total-energy
counter (joules since the driver loaded: differences give energy over a window), SM and memory
clocks, temperature, the clock-throttle reason bitmask, PCIe throughput, NVLink data counters
(bytes since the driver loaded, all links), and the memory used by the processes NVML can see.
A reading the device, the driver or the installed binding does not support is left out, never 0.
MIG instances are listed as ``<parent>/mig<index>`` with their memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from loadgen.telemetry.model import Sample, SourceUnavailable


def _import_pynvml() -> ModuleType:
    try:
        import pynvml
    except ImportError:
        raise SourceUnavailable("nvidia-ml-py is not installed (pip install 'loadgen[gpu]')") from None
    module: ModuleType = pynvml
    return module


class NvmlSource:
    name = "gpu"

    def __init__(self, devices: tuple[str, ...] = (), nvml: ModuleType | None = None) -> None:
        """``devices``: indices ("0") or UUIDs ("GPU-…"); empty means every device."""
        self._wanted = devices
        self._nvml = nvml
        self._handles: list[tuple[str, Any]] = []

    def open(self) -> None:
        nvml = self._nvml or _import_pynvml()
        self._nvml = nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise SourceUnavailable(f"NVML cannot start: {exc} (no NVIDIA driver?)") from None
        count = nvml.nvmlDeviceGetCount()
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            if self._wanted and str(index) not in self._wanted and uuid not in self._wanted:
                continue
            self._handles.append((str(index), handle))
            self._handles += self._mig_handles(str(index), handle)
        if not self._handles:
            raise SourceUnavailable(f"no GPU matches {', '.join(self._wanted)} among {count} devices")

    def _mig_handles(self, parent: str, handle: Any) -> list[tuple[str, Any]]:
        nvml = self._nvml
        assert nvml is not None
        try:
            current, _ = nvml.nvmlDeviceGetMigMode(handle)
            if current != nvml.NVML_DEVICE_MIG_ENABLE:
                return []
            count = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
        except nvml.NVMLError:
            return []
        instances = []
        for index in range(count):
            try:
                instances.append((f"{parent}/mig{index}", nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index)))
            except nvml.NVMLError:
                continue
        return instances

    def read(self, t_ns: int) -> list[Sample]:
        return [Sample(t_ns, self.name, device, self._read_device(handle)) for device, handle in self._handles]

    def _read_device(self, handle: Any) -> dict[str, float]:
        nvml = self._nvml
        assert nvml is not None
        values: dict[str, float] = {}

        def take(read: Callable[[], None]) -> None:
            # NVMLError: unsupported by this device or MIG instance; AttributeError: an older binding
            with contextlib.suppress(nvml.NVMLError, AttributeError):
                read()

        def utilization() -> None:
            rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            values["gpu_util_percent"] = float(rates.gpu)
            values["mem_util_percent"] = float(rates.memory)

        def memory() -> None:
            info = nvml.nvmlDeviceGetMemoryInfo(handle)
            values["memory_used_bytes"] = float(info.used)
            values["memory_total_bytes"] = float(info.total)

        def power() -> None:
            values["power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0

        def energy() -> None:
            values["energy_j"] = nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0

        def clocks() -> None:
            values["sm_clock_mhz"] = float(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))
            values["mem_clock_mhz"] = float(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM))

        def temperature() -> None:
            values["temperature_c"] = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))

        def throttle() -> None:
            values["throttle_reasons"] = float(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle))

        def pcie() -> None:  # NVML reports KB/s
            values["pcie_tx_bytes_per_s"] = (
                nvml.nvmlDeviceGetPcieThroughput(handle, nvml.NVML_PCIE_UTIL_TX_BYTES) * 1024.0
            )
            values["pcie_rx_bytes_per_s"] = (
                nvml.nvmlDeviceGetPcieThroughput(handle, nvml.NVML_PCIE_UTIL_RX_BYTES) * 1024.0
            )

        def nvlink() -> None:  # cumulative KiB over all links; the summary turns them into rates
            fields = nvml.nvmlDeviceGetFieldValues(
                handle, [nvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, nvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX]
            )
            for key, field in zip(("nvlink_tx_bytes_total", "nvlink_rx_bytes_total"), fields, strict=True):
                if field.nvmlReturn == 0:
                    values[key] = float(field.value.ullVal) * 1024.0

        def processes() -> None:
            running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            values["processes"] = float(len(running))
            values["process_memory_bytes"] = float(sum(p.usedGpuMemory or 0 for p in running))

        for read in (utilization, memory, power, energy, clocks, temperature, throttle, pcie, nvlink, processes):
            take(read)
        return values

    def close(self) -> None:
        if self._nvml is not None and self._handles:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()
        self._handles = []


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
