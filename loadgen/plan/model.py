"""Planning layer: what one replica can carry on hardware nobody measured, from the roofline model
the simulator runs (``loadgen.hardware.roofline``).

In steady state a replica runs ``b`` sequences; each engine step decodes one token for all of them
and prefills the prompts of the ones that replace finished sequences (``b × input / output``
prompt tokens per step). With step time ``t(b)``: TPOT ≈ t(b); TTFT ≈ 1.5 × t(b) (half a step's
wait plus the step that prefills it); throughput = b / (output × t(b)) requests/s. The largest b
that keeps TPOT and TTFT within the SLOs, fits the KV cache (every sequence holding
input + output tokens) and the engine's max batch gives the capacity, and whichever stopped b is
the binding constraint (``tpot``, ``ttft``, ``memory`` or ``max_batch``).

The model predicts typical (median-like) latencies; the planner therefore uses it only as a
ratio between two pieces of hardware, calibrated on the measured sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.config import SloTarget
from loadgen.hardware.roofline import HardwareSpec, ModelSpec, RooflineProfile

TTFT_STEPS = 1.5


@dataclass(frozen=True, slots=True)
class ModelCapacity:
    requests_per_s: float
    batch: int
    step_time_s: float
    binding: str


def modelled_capacity(
    model: ModelSpec,
    hardware: HardwareSpec,
    slo: tuple[SloTarget, ...],
    input_tokens: float,
    output_tokens: float,
    max_batch: int = 256,
) -> ModelCapacity:
    profile = RooflineProfile("plan", model, hardware, max_batch=max_batch)
    tpot_limit = min((t.threshold_ns / 1e9 for t in slo if t.metric in ("tpot", "itl")), default=float("inf"))
    ttft_limit = min((t.threshold_ns / 1e9 for t in slo if t.metric == "ttft"), default=float("inf"))
    per_sequence_tokens = input_tokens + output_tokens
    memory_batch = int(profile.kv_capacity_tokens // per_sequence_tokens) if per_sequence_tokens else max_batch

    def step_time(batch: int) -> float:
        prefill = round(batch * input_tokens / max(output_tokens, 1.0))
        return profile.step_time_s(prefill, batch, round(batch * (input_tokens + output_tokens / 2)))

    best: ModelCapacity | None = None
    binding = "max_batch"
    for batch in range(1, max_batch + 1):
        if batch > memory_batch:
            binding = "memory"
            break
        step = step_time(batch)
        if step > tpot_limit:
            binding = "tpot"
            break
        if TTFT_STEPS * step > ttft_limit:
            binding = "ttft"
            break
        best = ModelCapacity(batch / (output_tokens * step), batch, step, binding)
    if best is None:
        return ModelCapacity(0.0, 0, step_time(1) if memory_batch >= 1 else 0.0, binding)
    return ModelCapacity(best.requests_per_s, best.batch, best.step_time_s, binding)
