"""A stand-in for the ``pynvml`` module: two GPUs (the second with MIG on and no energy counter)."""

from __future__ import annotations

from types import SimpleNamespace


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


NVML_DEVICE_MIG_ENABLE = 1
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_PCIE_UTIL_TX_BYTES = 0
NVML_PCIE_UTIL_RX_BYTES = 1
NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX = 138
NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX = 139


class FakeNvml:
    def __init__(self, driver: bool = True) -> None:
        self.driver = driver
        self.energy_mj = [1_000_000, None]
        self.power_mw = [350_000, 120_000]
        self.shutdowns = 0
        for name, value in globals().items():
            if name.startswith("NVML"):
                setattr(self, name, value)

    def nvmlInit(self) -> None:
        if not self.driver:
            raise NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> tuple[str, int]:
        return ("gpu", index)

    def nvmlDeviceGetUUID(self, handle: tuple[str, int]) -> bytes:
        return f"GPU-0000-{handle[1]}".encode()

    def nvmlDeviceGetMigMode(self, handle: tuple[str, int]) -> tuple[int, int]:
        if handle[0] != "gpu":
            raise NVMLError_NotSupported("not supported")
        return (1, 1) if handle[1] == 1 else (0, 0)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: tuple[str, int]) -> int:
        return 2

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: tuple[str, int], index: int) -> tuple[str, int]:
        if index == 1:
            raise NVMLError("not found")
        return ("mig", index)

    def nvmlDeviceGetUtilizationRates(self, handle: tuple[str, int]) -> SimpleNamespace:
        if handle[0] == "mig":
            raise NVMLError_NotSupported("not supported on MIG")
        return SimpleNamespace(gpu=87 if handle[1] == 0 else 10, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle: tuple[str, int]) -> SimpleNamespace:
        return SimpleNamespace(used=30 * 2**30, total=80 * 2**30, free=50 * 2**30)

    def nvmlDeviceGetPowerUsage(self, handle: tuple[str, int]) -> int:
        if handle[0] == "mig":
            raise NVMLError_NotSupported("no")
        return self.power_mw[handle[1]]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: tuple[str, int]) -> int:
        energy = self.energy_mj[handle[1]] if handle[0] == "gpu" else None
        if energy is None:
            raise NVMLError_NotSupported("no energy counter")
        return energy

    def nvmlDeviceGetClockInfo(self, handle: tuple[str, int], clock: int) -> int:
        return 1980 if clock == NVML_CLOCK_SM else 2619

    def nvmlDeviceGetTemperature(self, handle: tuple[str, int], sensor: int) -> int:
        return 61

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: tuple[str, int]) -> int:
        return 0x4

    def nvmlDeviceGetPcieThroughput(self, handle: tuple[str, int], counter: int) -> int:
        return 2048 if counter == NVML_PCIE_UTIL_TX_BYTES else 1024

    def nvmlDeviceGetFieldValues(self, handle: tuple[str, int], field_ids: list[int]) -> list[SimpleNamespace]:
        if handle[0] == "mig":
            raise NVMLError_NotSupported("no NVLink on MIG")
        status = 0 if handle[1] == 0 else 3  # the second GPU has no NVLink: NVML_ERROR_NOT_SUPPORTED
        return [
            SimpleNamespace(nvmlReturn=status, value=SimpleNamespace(ullVal=1000 + field_id)) for field_id in field_ids
        ]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: tuple[str, int]) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=1, usedGpuMemory=20 * 2**30), SimpleNamespace(pid=2, usedGpuMemory=None)]
