"""Simulator: a continuous-batching scheduler driven by the roofline model.

Each step admits waiting sequences (up to ``max_batch``, a prefill-token budget and the KV-cache
capacity, reserving prompt + max tokens like a server that never preempts), sleeps for the step
time the roofline gives, then hands every sequence its new tokens: one for a plain step, 1 + the
accepted drafts with speculation (acceptance drawn from a seeded generator). Steps are scheduled
on absolute times so the time spent delivering tokens does not stretch the simulated clock.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from loadgen.hardware.roofline import RooflineProfile

PREFIX_BLOCK_TOKENS = 16  # vLLM's default KV block size: a prefix is cached in whole blocks


def prefix_blocks(words: list[str]) -> tuple[int, ...]:
    """The prompt's whole blocks, each named by a hash of everything up to its end (a block is
    reused only behind the same prefix, as in vLLM's prefix cache)."""
    hashes, running = [], 0
    for start in range(0, len(words) - PREFIX_BLOCK_TOKENS + 1, PREFIX_BLOCK_TOKENS):
        running = hash((running, *words[start : start + PREFIX_BLOCK_TOKENS]))
        hashes.append(running)
    return tuple(hashes)


@dataclass(eq=False, slots=True)
class Sequence:
    prompt_tokens: int
    max_tokens: int
    generated: int = 0
    prefilled: bool = False
    deliveries: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)
    blocks: tuple[int, ...] = ()  # prefix_blocks of its prompt (for the prefix cache)
    cached_tokens: int = 0  # prompt tokens found in the prefix cache when it was admitted
    # when it was queued, scheduled, and given its first and last tokens (perf_counter s): its span
    queued_s: float = 0.0
    scheduled_s: float = 0.0
    first_token_s: float = 0.0
    last_token_s: float = 0.0

    @property
    def kv_tokens(self) -> int:
        return self.prompt_tokens + self.generated

    @property
    def reserved_tokens(self) -> int:
        return self.prompt_tokens + self.max_tokens


@dataclass(slots=True)
class EngineStats:
    steps: int = 0
    tokens_generated: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    requests_finished: int = 0
    draft_tokens_proposed: int = 0
    draft_tokens_accepted: int = 0
    modelled_seconds: float = 0.0  # sum of the roofline step times
    late_seconds: float = 0.0  # how far steps ran behind their schedule (the simulator's own lag)


class BatchingEngine:
    def __init__(self, profile: RooflineProfile, seed: int = 0, prefix_cache: bool = False) -> None:
        self.profile = profile
        # block hashes, least recently used first; as many as the KV cache holds blocks
        self._prefix_cache: OrderedDict[int, None] | None = OrderedDict() if prefix_cache else None
        self._cache_blocks = profile.kv_capacity_tokens // PREFIX_BLOCK_TOKENS
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.stats = EngineStats()
        self._reserved = 0
        self._wakeup = asyncio.Event()
        self._rng = random.Random(seed)

    def submit(self, sequence: Sequence) -> None:
        if sequence.reserved_tokens > self.profile.kv_capacity_tokens:
            raise ValueError(
                f"prompt + max tokens ({sequence.reserved_tokens}) exceed the KV cache "
                f"({self.profile.kv_capacity_tokens} tokens)"
            )
        sequence.queued_s = time.perf_counter()
        self.waiting.append(sequence)
        self._wakeup.set()

    def cancel(self, sequence: Sequence) -> None:
        if sequence in self.waiting:
            self.waiting.remove(sequence)
        elif sequence in self.running:
            self.running.remove(sequence)
            self._reserved -= sequence.reserved_tokens

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_step_at = loop.time()
        while True:
            if not self.running and not self.waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
                next_step_at = loop.time()
            prefill_tokens = self._admit()
            decoding = [sequence for sequence in self.running if sequence.prefilled]
            kv_tokens = sum(sequence.kv_tokens for sequence in self.running)
            step_s = self.profile.step_time_s(prefill_tokens, len(decoding), kv_tokens)
            self.stats.modelled_seconds += step_s
            next_step_at += step_s
            delay = next_step_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.stats.late_seconds -= delay
                next_step_at = loop.time()
            self._deliver()

    def _admit(self) -> int:
        profile = self.profile
        prefill_tokens = 0
        while self.waiting and len(self.running) < profile.max_batch:
            candidate = self.waiting[0]
            if prefill_tokens and prefill_tokens + candidate.prompt_tokens > profile.max_batched_tokens:
                break
            if self._reserved + candidate.reserved_tokens > profile.kv_capacity_tokens:
                break
            self.waiting.popleft()
            candidate.scheduled_s = time.perf_counter()
            self.running.append(candidate)
            self._reserved += candidate.reserved_tokens
            candidate.cached_tokens = self._cached_prefix(candidate)
            prefill_tokens += candidate.prompt_tokens - candidate.cached_tokens
            self.stats.prompt_tokens += candidate.prompt_tokens
            self.stats.cached_prompt_tokens += candidate.cached_tokens
        return prefill_tokens

    def _cached_prefix(self, sequence: Sequence) -> int:
        """Prompt tokens a prefix cache holds (its leading blocks seen before; the last token is
        always computed), then its blocks are remembered; 0 without the cache."""
        cache = self._prefix_cache
        if cache is None:
            return 0
        hits = 0
        for block in sequence.blocks:
            if block not in cache:
                break
            hits += 1
        for block in sequence.blocks:
            cache[block] = None
            cache.move_to_end(block)
        while len(cache) > self._cache_blocks:
            cache.popitem(last=False)
        return min(hits * PREFIX_BLOCK_TOKENS, sequence.prompt_tokens - 1)

    def _deliver(self) -> None:
        now_s = time.perf_counter()
        self.stats.steps += 1
        draft = self.profile.draft
        finished = []
        for sequence in self.running:
            if sequence.prefilled:
                tokens = 1
                if draft is not None:
                    accepted = 0
                    while accepted < draft.draft_tokens and self._rng.random() < draft.acceptance_rate:
                        accepted += 1
                    self.stats.draft_tokens_proposed += draft.draft_tokens
                    self.stats.draft_tokens_accepted += accepted
                    tokens += accepted
            else:
                sequence.prefilled = True
                sequence.first_token_s = now_s
                tokens = 1
            tokens = min(tokens, sequence.max_tokens - sequence.generated)
            sequence.generated += tokens
            self.stats.tokens_generated += tokens
            sequence.deliveries.put_nowait(tokens)
            if sequence.generated >= sequence.max_tokens:
                sequence.last_token_s = now_s
                sequence.deliveries.put_nowait(None)
                finished.append(sequence)
        for sequence in finished:
            self.running.remove(sequence)
            self._reserved -= sequence.reserved_tokens
            self.stats.requests_finished += 1
