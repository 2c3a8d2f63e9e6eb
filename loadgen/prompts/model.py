"""Prompts layer: one prompt, and the seeded order in which a run draws them."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt as plain text or as chat messages (exactly one of the two is set)."""

    id: str
    text: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    max_tokens: int | None = None
    expected: str | tuple[str, ...] | None = None  # an expected answer (see prompts.answers)
    match: str = "contains"

    def as_text(self) -> str:
        if self.text is not None:
            return self.text
        return "\n".join(message.get("content", "") for message in self.messages or ())

    def as_messages(self) -> list[dict[str, str]]:
        if self.messages is not None:
            return [dict(message) for message in self.messages]
        return [{"role": "user", "content": self.text or ""}]


class PromptPicker:
    """Hands out prompts by request index: each pass over the set is a seeded shuffle.

    The same seed gives the same prompt for the same request index, so two runs (or a baseline
    and a candidate) see identical prompts in identical order.
    """

    def __init__(self, prompts: Sequence[Prompt], seed: int, shuffle: bool = True) -> None:
        if not prompts:
            raise ValueError("the prompt set is empty")
        self._prompts = list(prompts)
        self._seed = seed
        self._shuffle = shuffle
        self._orders: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self._prompts)

    def pick(self, index: int) -> Prompt:
        size = len(self._prompts)
        round_number, position = divmod(index, size)
        order = self._orders.get(round_number)
        if order is None:
            order = list(range(size))
            if self._shuffle:
                random.Random(f"{self._seed}:{round_number}").shuffle(order)
            self._orders = {r: o for r, o in self._orders.items() if r >= round_number - 1}
            self._orders[round_number] = order
        return self._prompts[order[position]]
