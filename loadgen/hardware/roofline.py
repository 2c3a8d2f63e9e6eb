"""Shared bottom layer: the roofline model of one continuous-batching engine step (pure arithmetic).

One step runs the model once over the whole running batch:
- compute time = FLOPs / (peak FLOP/s × compute efficiency), where FLOPs = 2 × parameters ×
  tokens processed in the step (prompt tokens being prefilled + one token per decoding sequence,
  or draft length + 1 per sequence when verifying speculative drafts);
- memory time = bytes read / (memory bandwidth × bandwidth efficiency), where bytes = weight bytes
  + KV-cache bytes of every running sequence (kv_bytes_per_token × tokens it holds);
- step time = max(compute, memory) + fixed per-step overhead.
Decode is memory-bound at small batches, so a bigger batch costs little more per step until the KV
reads or the compute catch up: the knee a sweep should find. Attention FLOPs and communication
between GPUs are not modelled. Speculative decoding adds ``draft_tokens`` draft-model steps before
each verification step; each sequence then gains 1 + (accepted drafts) tokens.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    parameters: float
    bytes_per_parameter: float
    layers: int
    kv_heads: int
    head_dim: int
    kv_bytes_per_element: float = 2.0

    @property
    def weight_bytes(self) -> float:
        return self.parameters * self.bytes_per_parameter

    @property
    def kv_bytes_per_token(self) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.kv_bytes_per_element


@dataclass(frozen=True, slots=True)
class HardwareSpec:
    name: str
    memory_bandwidth_bytes_per_s: float
    dense_flops_per_s: float
    memory_bytes: float
    count: int = 1


@dataclass(frozen=True, slots=True)
class DraftSpec:
    model: ModelSpec
    draft_tokens: int
    acceptance_rate: float


@dataclass(frozen=True, slots=True)
class RooflineProfile:
    name: str
    model: ModelSpec
    hardware: HardwareSpec
    compute_efficiency: float = 0.55
    bandwidth_efficiency: float = 0.75
    step_overhead_s: float = 0.0003
    max_batch: int = 256
    max_batched_tokens: int = 8192
    kv_memory_fraction: float = 0.9
    draft: DraftSpec | None = None

    @property
    def kv_capacity_tokens(self) -> int:
        usable = self.hardware.memory_bytes * self.hardware.count * self.kv_memory_fraction
        return max(0, int((usable - self.model.weight_bytes) / self.model.kv_bytes_per_token))

    def _pass_time_s(self, model: ModelSpec, tokens: int, kv_tokens: int) -> float:
        hardware = self.hardware
        flops = 2.0 * model.parameters * tokens
        compute_s = flops / (hardware.dense_flops_per_s * hardware.count * self.compute_efficiency)
        bytes_read = model.weight_bytes + model.kv_bytes_per_token * kv_tokens
        memory_s = bytes_read / (hardware.memory_bandwidth_bytes_per_s * hardware.count * self.bandwidth_efficiency)
        return max(compute_s, memory_s) + self.step_overhead_s

    def step_time_s(self, prefill_tokens: int, decoding_sequences: int, kv_tokens: int) -> float:
        """Seconds for one step: prefill ``prefill_tokens`` and advance ``decoding_sequences``."""
        if prefill_tokens == 0 and decoding_sequences == 0:
            return 0.0
        if self.draft is None or decoding_sequences == 0:
            return self._pass_time_s(self.model, prefill_tokens + decoding_sequences, kv_tokens)
        draft = self.draft
        draft_kv = kv_tokens * draft.model.kv_bytes_per_token / self.model.kv_bytes_per_token
        draft_s = draft.draft_tokens * self._pass_time_s(draft.model, decoding_sequences, int(draft_kv))
        verify_tokens = prefill_tokens + decoding_sequences * (draft.draft_tokens + 1)
        return draft_s + self._pass_time_s(self.model, verify_tokens, kv_tokens)

    def expected_tokens_per_step(self) -> float:
        if self.draft is None:
            return 1.0
        rate, k = self.draft.acceptance_rate, self.draft.draft_tokens
        if rate >= 1.0:
            return k + 1.0
        return (1.0 - rate ** (k + 1)) / (1.0 - rate)
