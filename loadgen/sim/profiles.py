"""Simulator: built-in server profiles.

Hardware figures are public datasheet values: H100 SXM5 80 GB: 3.35 TB/s HBM3, 989 TFLOP/s dense
BF16; A10G 24 GB: 600 GB/s, 125 TFLOP/s dense BF16 (tensor cores, as NVIDIA states for A10). Model
shapes are from the models' published configs (Llama-2-7B: 6.74 B parameters, 32 layers, 32 KV
heads of 128; Llama-3-8B: 8.03 B, 32 layers, 8 KV heads of 128).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loadgen.errors import ConfigError
from loadgen.hardware.profiles import SHIPPED_PROFILES, load_profiles
from loadgen.hardware.roofline import DraftSpec, HardwareSpec, ModelSpec, RooflineProfile
from loadgen.parsing import did_you_mean

LLAMA2_7B = ModelSpec("llama-2-7b", 6.74e9, 2.0, layers=32, kv_heads=32, head_dim=128)
LLAMA3_8B = ModelSpec("llama-3-8b", 8.03e9, 2.0, layers=32, kv_heads=8, head_dim=128)
LLAMA_68M_DRAFT = ModelSpec("llama-68m", 6.8e7, 2.0, layers=2, kv_heads=12, head_dim=64)
H100_SXM = HardwareSpec("H100-SXM5-80GB", 3.35e12, 989e12, 80e9)
A10G = HardwareSpec("A10G-24GB", 6.0e11, 125e12, 24e9)


@dataclass(frozen=True, slots=True)
class FixedProfile:
    """Every request independent: first token after ``ttft_s``, then one token every ``itl_s``.

    Used as a server with known timings (truth tests, client-overhead benchmarks).
    """

    name: str
    ttft_s: float
    itl_s: float
    output_tokens: int | None = None


SimProfile = RooflineProfile | FixedProfile

PROFILES: dict[str, SimProfile] = {
    # An engine built for at most 32 sequences in flight (as TensorRT-LLM engines often are):
    # beyond 32 users requests queue, so a 1..64 sweep shows the knee.
    "llama2-7b-h100": RooflineProfile("llama2-7b-h100", LLAMA2_7B, H100_SXM, max_batch=32),
    "llama2-7b-h100-b256": RooflineProfile("llama2-7b-h100-b256", LLAMA2_7B, H100_SXM, max_batch=256),
    "llama2-7b-h100-spec": RooflineProfile(
        "llama2-7b-h100-spec",
        LLAMA2_7B,
        H100_SXM,
        max_batch=32,
        draft=DraftSpec(LLAMA_68M_DRAFT, draft_tokens=4, acceptance_rate=0.7),
    ),
    # A grouped-query-attention model: small KV cache, so verification of drafts turns
    # compute-bound at large batches and speculation stops paying (the crossover).
    "llama3-8b-h100": RooflineProfile("llama3-8b-h100", LLAMA3_8B, H100_SXM, max_batch=256),
    "llama3-8b-h100-spec": RooflineProfile(
        "llama3-8b-h100-spec",
        LLAMA3_8B,
        H100_SXM,
        max_batch=256,
        draft=DraftSpec(LLAMA_68M_DRAFT, draft_tokens=4, acceptance_rate=0.6),
    ),
    "llama3-8b-a10g": RooflineProfile("llama3-8b-a10g", LLAMA3_8B, A10G, max_batch=64),
    "fixed-50ms-10ms": FixedProfile("fixed-50ms-10ms", ttft_s=0.050, itl_s=0.010),
    "zero-delay": FixedProfile("zero-delay", ttft_s=0.0, itl_s=0.0),
}
DEFAULT_PROFILE = "llama2-7b-h100"


def get_profile(name: str) -> SimProfile:
    if name.startswith("fixed:"):
        return _parse_fixed(name)
    if "@" in name:
        return _from_profile_files(name)
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"--sim-profile: unknown profile {name!r}{did_you_mean(name, PROFILES)}; expected one of "
            f"{', '.join(PROFILES)} or fixed:TTFT_MS,ITL_MS"
        ) from None


def _parse_fixed(name: str) -> FixedProfile:
    try:
        ttft_ms, itl_ms = (float(part) for part in name.removeprefix("fixed:").split(","))
    except ValueError:
        raise ConfigError(f"--sim-profile: expected fixed:TTFT_MS,ITL_MS (e.g. fixed:50,10), got {name!r}") from None
    return FixedProfile(name, ttft_ms / 1000, itl_ms / 1000)


def _from_profile_files(name: str) -> RooflineProfile:
    """``MODEL@HARDWARE.yaml[,tp=N][,max_batch=N]``: a model from ``models.yaml`` beside the hardware
    profile, on N of its accelerators (default 1), as the planner models it. ``MODEL@NAME`` takes
    the hardware profile ``NAME`` shipped with loadgen."""
    model_name, _, rest = name.partition("@")
    hardware_path, *options = rest.split(",")
    settings = {"tp": 1, "max_batch": 256}
    for option in options:
        key, _, value = option.partition("=")
        if key not in settings or not value.isdigit() or int(value) < 1:
            raise ConfigError(f"--sim-profile {name}: expected MODEL@HARDWARE.yaml[,tp=N][,max_batch=N]")
        settings[key] = int(value)
    path = Path(hardware_path)
    if path.suffix != ".yaml" and not path.exists():  # a shipped profile by name: llama-3-8b@aws-p5.48xlarge
        path = SHIPPED_PROFILES / f"{hardware_path}.yaml"
    profiles = load_profiles(path, path.parent / "models.yaml")
    hardware = next((h for h in profiles.hardware.values() if Path(h.path) == path), None)
    model = profiles.models.get(model_name)
    if hardware is None or model is None:
        raise ConfigError(f"--sim-profile {name}: no model {model_name!r} in {path.parent / 'models.yaml'} "
                          f"or no hardware profile in {path}")  # fmt: skip
    return RooflineProfile(name, model.spec(), hardware.spec(settings["tp"]), max_batch=settings["max_batch"])
