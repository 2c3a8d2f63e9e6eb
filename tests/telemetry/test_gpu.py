import pytest

from loadgen.telemetry.gpu import NvmlSource
from loadgen.telemetry.model import SourceUnavailable
from tests.telemetry.fake_nvml import FakeNvml


def test_readings_of_every_device_and_mig_instance() -> None:
    nvml = FakeNvml()
    source = NvmlSource(nvml=nvml)  # type: ignore[arg-type]
    source.open()
    samples = {sample.device: sample.values for sample in source.read(123)}
    assert set(samples) == {"0", "1", "1/mig0"}
    gpu0 = samples["0"]
    assert gpu0["gpu_util_percent"] == 87
    assert gpu0["power_w"] == 350.0
    assert gpu0["energy_j"] == 1000.0
    assert gpu0["memory_used_bytes"] == 30 * 2**30
    assert gpu0["sm_clock_mhz"] == 1980 and gpu0["mem_clock_mhz"] == 2619
    assert gpu0["temperature_c"] == 61
    assert gpu0["throttle_reasons"] == 4
    assert gpu0["pcie_tx_bytes_per_s"] == 2048 * 1024
    assert gpu0["nvlink_tx_bytes_total"] == (1000 + 138) * 1024
    assert "nvlink_tx_bytes_total" not in samples["1"]
    assert gpu0["processes"] == 2 and gpu0["process_memory_bytes"] == 20 * 2**30
    assert "energy_j" not in samples["1"]  # unsupported readings are left out, never 0
    assert "gpu_util_percent" not in samples["1/mig0"]
    assert samples["1/mig0"]["memory_used_bytes"] == 30 * 2**30
    source.close()
    assert nvml.shutdowns == 1


def test_device_selection_by_index_or_uuid() -> None:
    source = NvmlSource(devices=("GPU-0000-1",), nvml=FakeNvml())  # type: ignore[arg-type]
    source.open()
    assert {sample.device for sample in source.read(0)} == {"1", "1/mig0"}
    source = NvmlSource(devices=("0",), nvml=FakeNvml())  # type: ignore[arg-type]
    source.open()
    assert [sample.device for sample in source.read(0)] == ["0"]
    with pytest.raises(SourceUnavailable, match="no GPU matches 7"):
        NvmlSource(devices=("7",), nvml=FakeNvml()).open()  # type: ignore[arg-type]


def test_no_driver_is_unavailable_with_the_reason() -> None:
    with pytest.raises(SourceUnavailable, match="Driver Not Loaded"):
        NvmlSource(nvml=FakeNvml(driver=False)).open()  # type: ignore[arg-type]


def test_real_nvml_on_a_machine_without_a_gpu() -> None:
    source = NvmlSource()  # nvidia-ml-py is a dev dependency: the real binding, the real driver lookup
    try:
        source.open()
    except SourceUnavailable as exc:
        assert "NVML cannot start" in str(exc)
    else:  # a machine with a driver: readings must come back
        assert source.read(0)
        source.close()
