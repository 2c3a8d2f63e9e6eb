"""Shared bottom layer: hardware and model profiles (``profiles/*.yaml``), validated on load.

A hardware profile describes one instance or server: its accelerators (count, memory, bandwidth,
dense BF16/FP8 compute per accelerator), interconnect, power, and price per hour by kind
(``on_demand``, ``spot``, ``reserved``, ``owned``). ``models.yaml`` lists model shapes. Both
convert to the roofline specs that the simulator and the planner share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from loadgen.errors import ConfigError
from loadgen.hardware.roofline import HardwareSpec, ModelSpec

BYTES_PER_PARAMETER = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
PRICE_KINDS = ("on_demand", "spot", "reserved", "owned")
HARDWARE_KEYS = {
    "kind", "name", "description", "accelerator", "accelerators", "memory_gb", "memory_bandwidth_gb_s",
    "bf16_dense_tflops", "fp8_dense_tflops", "interconnect", "power_w", "price_per_hour", "price_source",
}  # fmt: skip
MODEL_KEYS = {"name", "parameters_b", "dtype", "layers", "kv_heads", "head_dim", "kv_dtype"}


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    name: str
    description: str
    accelerator: str
    accelerators: int
    memory_gb: float
    memory_bandwidth_gb_s: float
    bf16_dense_tflops: float
    fp8_dense_tflops: float | None
    interconnect: str
    power_w: float | None
    price_per_hour: dict[str, float]
    price_source: str
    path: str

    def spec(self, accelerators: int, fp8: bool = False) -> HardwareSpec:
        """The roofline view of ``accelerators`` of these working as one replica."""
        tflops = self.fp8_dense_tflops if fp8 and self.fp8_dense_tflops else self.bf16_dense_tflops
        return HardwareSpec(
            name=f"{accelerators}× {self.accelerator}",
            memory_bandwidth_bytes_per_s=self.memory_bandwidth_gb_s * 1e9,
            dense_flops_per_s=tflops * 1e12,
            memory_bytes=self.memory_gb * 1e9,
            count=accelerators,
        )

    def price(self, kind: str) -> tuple[float, str] | None:
        """The hourly price of that kind, or the first one the profile has, with its kind."""
        if kind in self.price_per_hour:
            return self.price_per_hour[kind], kind
        for other in PRICE_KINDS:
            if other in self.price_per_hour:
                return self.price_per_hour[other], other
        return None


@dataclass(frozen=True, slots=True)
class ModelProfile:
    name: str
    parameters_b: float
    dtype: str
    layers: int
    kv_heads: int
    head_dim: int
    kv_dtype: str

    def spec(self) -> ModelSpec:
        return ModelSpec(
            self.name, self.parameters_b * 1e9, BYTES_PER_PARAMETER[self.dtype], self.layers, self.kv_heads,
            self.head_dim, BYTES_PER_PARAMETER[self.kv_dtype],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProfileSet:
    hardware: dict[str, HardwareProfile]
    models: dict[str, ModelProfile]


def _number(data: dict[str, object], key: str, where: str, *, required: bool = True, integer: bool = False) -> float:
    value = data.get(key)
    if value is None and not required:
        return float("nan")
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0
            or (integer and float(value) != int(value))):  # fmt: skip
        expected = "a positive whole number" if integer else "a positive number"
        raise ConfigError(f"{where}: key {key!r} must be {expected}, got {value!r}")
    return float(value)


def _text(data: dict[str, object], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: key {key!r} must be a non-empty string, got {value!r}")
    return value


def parse_hardware(data: dict[str, object], where: str) -> HardwareProfile:
    unknown = set(data) - HARDWARE_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; expected some of {', '.join(sorted(HARDWARE_KEYS))}"
        )
    prices = data.get("price_per_hour") or {}
    if not isinstance(prices, dict) or not prices:
        raise ConfigError(f"{where}: 'price_per_hour' must map some of {', '.join(PRICE_KINDS)} to USD per hour")
    for kind in prices:
        if kind not in PRICE_KINDS:
            raise ConfigError(f"{where}: price kind {kind!r} unknown; expected one of {', '.join(PRICE_KINDS)}")
        _number(prices, kind, f"{where}: price_per_hour")
    fp8 = _number(data, "fp8_dense_tflops", where, required=False)
    power = _number(data, "power_w", where, required=False)
    return HardwareProfile(
        name=_text(data, "name", where),
        description=_text(data, "description", where, default=str(data.get("name"))),
        accelerator=_text(data, "accelerator", where),
        accelerators=int(_number(data, "accelerators", where, integer=True)),
        memory_gb=_number(data, "memory_gb", where),
        memory_bandwidth_gb_s=_number(data, "memory_bandwidth_gb_s", where),
        bf16_dense_tflops=_number(data, "bf16_dense_tflops", where),
        fp8_dense_tflops=None if fp8 != fp8 else fp8,
        interconnect=str(data.get("interconnect", "")),
        power_w=None if power != power else power,
        price_per_hour={str(kind): float(price) for kind, price in prices.items()},
        price_source=str(data.get("price_source", "")),
        path=where,
    )


def parse_model(data: dict[str, object], where: str) -> ModelProfile:
    unknown = set(data) - MODEL_KEYS
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; expected some of {', '.join(sorted(MODEL_KEYS))}"
        )
    dtype = _text(data, "dtype", where, default="bf16")
    kv_dtype = _text(data, "kv_dtype", where, default="bf16")
    for key, value in (("dtype", dtype), ("kv_dtype", kv_dtype)):
        if value not in BYTES_PER_PARAMETER:
            raise ConfigError(f"{where}: {key} {value!r} unknown; expected one of {', '.join(BYTES_PER_PARAMETER)}")
    return ModelProfile(
        name=_text(data, "name", where), parameters_b=_number(data, "parameters_b", where), dtype=dtype,
        layers=int(_number(data, "layers", where, integer=True)),
        kv_heads=int(_number(data, "kv_heads", where, integer=True)),
        head_dim=int(_number(data, "head_dim", where, integer=True)), kv_dtype=kv_dtype,
    )  # fmt: skip


def load_profile_file(path: Path) -> tuple[list[HardwareProfile], list[ModelProfile]]:
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'kind: hardware' or 'kind: models'")
    kind = data.get("kind")
    if kind == "hardware":
        return [parse_hardware(data, str(path))], []
    if kind == "models":
        entries = data.get("models")
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise ConfigError(f"{path}: 'models' must be a list of model mappings")
        return [], [parse_model(entry, f"{path}: model {i + 1}") for i, entry in enumerate(entries)]
    raise ConfigError(f"{path}: key 'kind' is {kind!r}; expected 'hardware' or 'models'")


SHIPPED_PROFILES = Path(__file__).parents[1] / "data" / "profiles"  # what `plan` uses without --profiles


def load_profiles(*locations: str | Path) -> ProfileSet:
    """Profiles from files and directories (every ``*.yaml`` in a directory)."""
    hardware: dict[str, HardwareProfile] = {}
    models: dict[str, ModelProfile] = {}
    for location in locations:
        path = Path(location)
        if path.is_dir():
            files = sorted(path.glob("*.yaml"))
        elif path.is_file():
            files = [path]
        else:
            raise ConfigError(f"--profiles {location}: no such file or directory")
        for file in files:
            found_hardware, found_models = load_profile_file(file)
            for profile in found_hardware:
                if profile.name in hardware:
                    raise ConfigError(
                        f"{file}: hardware profile {profile.name!r} is also defined in {hardware[profile.name].path}"
                    )
                hardware[profile.name] = profile
            for model in found_models:
                models[model.name] = model
    return ProfileSet(hardware, models)
