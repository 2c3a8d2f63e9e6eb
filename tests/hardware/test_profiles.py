from pathlib import Path

import pytest

from loadgen.errors import ConfigError
from loadgen.hardware.profiles import load_profiles

GOOD = """kind: hardware
name: box
accelerator: X1
accelerators: 2
memory_gb: 80
memory_bandwidth_gb_s: 2000
bf16_dense_tflops: 500
price_per_hour: {on_demand: 3.5}
"""


def test_shipped_profiles_load() -> None:
    profiles = load_profiles(Path(__file__).parents[2] / "profiles")
    assert {
        "dell-r760xa-4xh100-pcie",
        "dell-xe9680-8xh100-sxm",
        "aws-p4d.24xlarge",
        "aws-p5.48xlarge",
        "aws-inf2.xlarge",
        "aws-inf2.48xlarge",
        "aws-g5.xlarge",
        "aws-p5en.48xlarge",
    } <= set(profiles.hardware)
    assert profiles.models["llama-3-8b"].spec().kv_bytes_per_token == 2 * 32 * 8 * 128 * 2
    assert all(profile.price_per_hour for profile in profiles.hardware.values())


@pytest.mark.parametrize(
    "change, message",
    [
        (
            "memory_gb: 80",
            "memory_gb: lots",
        ),
        ("accelerators: 2", "accelerators: 1.5"),
        ("kind: hardware", "kind: gadget"),
        ("price_per_hour: {on_demand: 3.5}", "price_per_hour: {hourly: 3.5}"),
        ("price_per_hour: {on_demand: 3.5}", "price_per_hour: {on_demand: -1}"),
        ("name: box", "name: box\ncolour: red"),
    ],
)
def test_bad_hardware_profiles_name_file_and_key(tmp_path: Path, change: str, message: str) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(GOOD.replace(change, message))
    with pytest.raises(ConfigError, match=str(file)):
        load_profiles(file)


def test_bad_models_and_duplicates(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        "kind: models\nmodels:\n  - {name: m, parameters_b: 7, dtype: bf17, layers: 32, kv_heads: 8, head_dim: 128}\n"
    )
    with pytest.raises(ConfigError, match="dtype 'bf17' unknown"):
        load_profiles(models)
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    models.unlink()
    with pytest.raises(ConfigError, match="also defined in"):
        load_profiles(tmp_path)
    with pytest.raises(ConfigError, match="no such file or directory"):
        load_profiles(tmp_path / "missing")
