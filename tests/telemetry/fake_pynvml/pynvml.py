"""A fake ``pynvml`` module for end-to-end tests: put this folder first on PYTHONPATH and the
telemetry sidecar imports it instead of the real NVML binding. One H100-like GPU drawing 350 W,
whose energy counter advances with the monotonic clock."""

import time
from types import SimpleNamespace

NVML_DEVICE_MIG_ENABLE = 1
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_PCIE_UTIL_TX_BYTES = 0
NVML_PCIE_UTIL_RX_BYTES = 1
POWER_W = 350.0
_START = time.perf_counter()


class NVMLError(Exception):
    pass


def nvmlInit():
    return None


def nvmlShutdown():
    return None


def nvmlDeviceGetCount():
    return 1


def nvmlDeviceGetHandleByIndex(index):
    return index


def nvmlDeviceGetUUID(handle):
    return "GPU-fake-0"


def nvmlDeviceGetMigMode(handle):
    return (0, 0)


def nvmlDeviceGetUtilizationRates(handle):
    return SimpleNamespace(gpu=75, memory=60)


def nvmlDeviceGetMemoryInfo(handle):
    return SimpleNamespace(used=40 * 2**30, total=80 * 2**30)


def nvmlDeviceGetPowerUsage(handle):
    return int(POWER_W * 1000)


def nvmlDeviceGetTotalEnergyConsumption(handle):
    return int(1e9 + (time.perf_counter() - _START) * POWER_W * 1000)  # millijoules


def nvmlDeviceGetClockInfo(handle, clock):
    return 1980


def nvmlDeviceGetTemperature(handle, sensor):
    return 60


def nvmlDeviceGetCurrentClocksThrottleReasons(handle):
    return 0


def nvmlDeviceGetPcieThroughput(handle, counter):
    raise NVMLError("Not Supported")


def nvmlDeviceGetComputeRunningProcesses(handle):
    return []
