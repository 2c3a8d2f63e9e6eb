import pytest

from loadgen.errors import ConfigError
from loadgen.hardware.roofline import RooflineProfile
from loadgen.sim.profiles import H100_SXM, LLAMA2_7B, PROFILES, get_profile


def test_model_sizes() -> None:
    assert LLAMA2_7B.weight_bytes == pytest.approx(13.48e9)
    assert LLAMA2_7B.kv_bytes_per_token == 2 * 32 * 32 * 128 * 2  # 512 KiB


def test_single_sequence_decode_is_memory_bound() -> None:
    profile = RooflineProfile("t", LLAMA2_7B, H100_SXM, bandwidth_efficiency=1.0, step_overhead_s=0.0)
    # weights + 1000 tokens of KV over 3.35 TB/s
    expected = (13.48e9 + 1000 * 524288) / 3.35e12
    assert profile.step_time_s(0, 1, 1000) == pytest.approx(expected)


def test_prefill_is_compute_bound() -> None:
    profile = RooflineProfile("t", LLAMA2_7B, H100_SXM, compute_efficiency=1.0, step_overhead_s=0.0)
    assert profile.step_time_s(4096, 0, 4096) == pytest.approx(2 * 6.74e9 * 4096 / 989e12)


def test_step_time_grows_with_batch_kv() -> None:
    profile = PROFILES["llama2-7b-h100-b256"]
    assert isinstance(profile, RooflineProfile)
    small = profile.step_time_s(0, 1, 500)
    large = profile.step_time_s(0, 64, 64 * 500)
    assert large > small * 1.3


def test_speculation_helps_alone_and_costs_at_large_batch() -> None:
    base = PROFILES["llama3-8b-h100"]
    spec = PROFILES["llama3-8b-h100-spec"]
    assert isinstance(base, RooflineProfile) and isinstance(spec, RooflineProfile)
    tokens_per_step = spec.expected_tokens_per_step()
    assert tokens_per_step == pytest.approx((1 - 0.6**5) / 0.4)

    def per_token(profile: RooflineProfile, batch: int, gain: float) -> float:
        return profile.step_time_s(0, batch, batch * 600) / gain

    assert per_token(spec, 1, tokens_per_step) < per_token(base, 1, 1.0) / 1.5
    assert per_token(spec, 256, tokens_per_step) > per_token(base, 256, 1.0)


def test_kv_capacity() -> None:
    profile = RooflineProfile("t", LLAMA2_7B, H100_SXM)
    assert profile.kv_capacity_tokens == int((80e9 * 0.9 - 13.48e9) / 524288)


def test_unknown_and_fixed_profiles() -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        get_profile("nope")
    fixed = get_profile("fixed:50,10")
    assert (fixed.ttft_s, fixed.itl_s) == (0.05, 0.01)
    with pytest.raises(ConfigError, match="fixed:TTFT_MS,ITL_MS"):
        get_profile("fixed:x")
