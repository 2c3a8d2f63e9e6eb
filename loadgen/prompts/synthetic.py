"""Prompts layer: synthetic prompts of controlled length, seeded.

``input=512,output=256`` gives prompts of 512 tokens and asks for 256 output tokens. With a
tokenizer (``--tokenizer``) the prompt is cut at exactly 512 of its tokens (±1 where a cut word
re-tokenizes differently); without one, tokens are approximated by words, one per token: exact for
the simulator, about 1.3 Llama-3 tokens per word for these common words. The chat API adds its
template's tokens on top (the server's usage counts them).
``dist=normal|uniform`` with ``spread=0.2`` varies both lengths: normal with a relative standard
deviation of ``spread``, uniform within ±``spread``. ``count`` sets how many distinct prompts.
Each prompt starts with its own random words so servers cannot serve it from a prefix cache,
unless ``prefixes=K,prefix_len=P`` asks for shared prefixes: K system prompts of P tokens each,
prompt n starting with prefix n mod K, then its own ``input − P`` tokens (what chat traffic with a
few system prompts looks like to a prefix cache; the summary says how much of it the server cached).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loadgen.errors import ConfigError
from loadgen.parsing import parse_key_values
from loadgen.prompts.model import Prompt
from loadgen.tokenizer import TokenCounter

WORDS = [
    "system",
    "network",
    "latency",
    "memory",
    "compute",
    "request",
    "answer",
    "question",
    "model",
    "token",
    "stream",
    "batch",
    "server",
    "client",
    "energy",
    "power",
    "budget",
    "plan",
    "queue",
    "cache",
    "history",
    "science",
    "river",
    "mountain",
    "city",
    "market",
    "language",
    "music",
    "garden",
    "window",
    "bridge",
    "letter",
    "number",
    "signal",
    "engine",
    "report",
    "summary",
    "detail",
    "method",
    "result",
    "value",
]
DISTRIBUTIONS = ("fixed", "normal", "uniform")


@dataclass(frozen=True, slots=True)
class SyntheticSpec:
    input_tokens: int
    output_tokens: int
    distribution: str = "fixed"
    spread: float = 0.0
    count: int = 256
    prefixes: int = 0  # shared prefixes (0: none, every prompt its own from the first word)
    prefix_tokens: int = 0


def parse_synthetic(text: str) -> SyntheticSpec:
    try:
        values = parse_key_values(text)
    except ValueError as exc:
        raise ConfigError(f"--synthetic: {exc}") from None
    known = {"input", "output", "dist", "spread", "count", "prefixes", "prefix_len"}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"--synthetic: unknown key {sorted(unknown)[0]!r}; expected {', '.join(sorted(known))}")
    try:
        spec = SyntheticSpec(
            input_tokens=int(values.get("input", "512")),
            output_tokens=int(values.get("output", "256")),
            distribution=values.get("dist", "fixed"),
            spread=float(values.get("spread", "0")),
            count=int(values.get("count", "256")),
            prefixes=int(values.get("prefixes", "0")),
            prefix_tokens=int(values.get("prefix_len", "0")),
        )
    except ValueError:
        raise ConfigError(
            f"--synthetic {text}: input, output, count, prefixes and prefix_len must be whole numbers, spread a number"
        ) from None
    if spec.input_tokens < 1 or spec.output_tokens < 1 or spec.count < 1:
        raise ConfigError(f"--synthetic {text}: input, output and count must be at least 1")
    if spec.distribution not in DISTRIBUTIONS:
        raise ConfigError(f"--synthetic: dist={spec.distribution!r}; expected one of {', '.join(DISTRIBUTIONS)}")
    if not 0 <= spec.spread < 1:
        raise ConfigError(f"--synthetic: spread={spec.spread}; expected 0 <= spread < 1")
    if spec.prefixes < 0 or spec.prefix_tokens < 0 or (spec.prefixes > 0) != (spec.prefix_tokens > 0):
        raise ConfigError(f"--synthetic {text}: prefixes=K and prefix_len=P go together, both at least 1")
    if spec.prefixes and spec.prefix_tokens >= spec.input_tokens:
        raise ConfigError(f"--synthetic {text}: prefix_len={spec.prefix_tokens} must be shorter than "
                          f"input={spec.input_tokens} (each prompt adds its own tokens after the prefix)")  # fmt: skip
    return spec


def synthesize(spec: SyntheticSpec, seed: int, counter: TokenCounter | None = None) -> list[Prompt]:
    rng = random.Random(f"synthetic:{seed}")
    exact = counter is not None and counter.encode is not None and counter.decode is not None

    def words(tokens: int, source: random.Random) -> str:
        if exact:
            assert counter is not None
            return _exact_tokens(tokens, counter, source)
        return " ".join(source.choice(WORDS) for _ in range(tokens))

    shared = [words(spec.prefix_tokens, random.Random(f"synthetic-prefix:{seed}:{k}")) for k in range(spec.prefixes)]
    prompts = []
    for number in range(spec.count):
        input_tokens = _vary(spec.input_tokens, spec, rng)
        output_tokens = _vary(spec.output_tokens, spec, rng)
        if shared:
            own = max(1, input_tokens - spec.prefix_tokens)
            text = shared[number % len(shared)] + " " + words(own, rng)
        else:
            text = words(input_tokens, rng)
        prompts.append(Prompt(id=f"synthetic-{number}", text=text, max_tokens=output_tokens))
    return prompts


def _exact_tokens(tokens: int, counter: TokenCounter, rng: random.Random) -> str:
    """Random words cut at ``tokens`` of the tokenizer's tokens: encode more than enough, keep the
    first ``tokens`` ids, decode; a cut mid-word may re-tokenize one token off, so trim until it fits."""
    assert counter.encode is not None and counter.decode is not None
    words = max(8, tokens)
    while True:
        ids = counter.encode(" ".join(rng.choice(WORDS) for _ in range(words)))
        if len(ids) >= tokens:
            break
        words *= 2
    keep = tokens
    text = counter.decode(ids[:keep])
    while counter.count(text) > tokens and keep > 1:
        keep -= 1
        text = counter.decode(ids[:keep])
    return text


def achieved_lengths(prompts: list[Prompt], counter: TokenCounter | None) -> dict[str, object]:
    """The input lengths the prompts really have, by the tokenizer or (without one) in words."""
    counts = [counter.count(p.as_text()) if counter else len(p.as_text().split()) for p in prompts]
    return {"counted_by": counter.name if counter else "words (one per token, the simulator's count)",
            "min": min(counts), "max": max(counts), "mean": round(sum(counts) / len(counts), 1)}  # fmt: skip


def _vary(mean: int, spec: SyntheticSpec, rng: random.Random) -> int:
    if spec.distribution == "normal":
        value = rng.gauss(mean, mean * spec.spread)
    elif spec.distribution == "uniform":
        value = rng.uniform(mean * (1 - spec.spread), mean * (1 + spec.spread))
    else:
        value = mean
    return max(1, round(value))
