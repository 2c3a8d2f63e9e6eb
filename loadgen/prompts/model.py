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
    batch: tuple[Prompt, ...] = ()  # several prompts sent in one request (--batch-size)
    session: str | None = None  # a multi-turn session's id (this run's instance of it), and the turn (1-based)
    turn: int | None = None

    @classmethod
    def batch_of(cls, prompts: Sequence[Prompt]) -> Prompt:
        """One request's worth of prompts; its own text is the first one's (for the preflight's sake)."""
        first = prompts[0]
        limits = [p.max_tokens for p in prompts if p.max_tokens is not None]
        return cls(id="+".join(p.id for p in prompts), text=first.text, messages=first.messages,
                   max_tokens=max(limits) if limits else None, batch=tuple(prompts))  # fmt: skip

    @property
    def texts(self) -> list[str]:
        """The prompt texts of the request: the batch's, or this one's."""
        return [p.as_text() for p in self.batch] if self.batch else [self.as_text()]

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

    def pick_batch(self, index: int, size: int) -> Prompt:
        """Request ``index``'s prompts when each request carries ``size`` of them."""
        if size <= 1:
            return self.pick(index)
        return Prompt.batch_of([self.pick(index * size + offset) for offset in range(size)])

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
