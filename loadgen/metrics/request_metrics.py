"""Metrics layer: what one request's record says about latency (pure functions, ns in, ns out).

Definitions (also in README):
- TTFT = first chunk that carries a token (even with empty text, see protocols.openai) − intended send.
- E2E = end of response − intended send.
- TPOT = (end − first token) / (output tokens − 1); only for requests with ≥ 2 output tokens.
- ITL: each gap between consecutive content chunks, divided among the tokens the later chunk
  carries (a chunk of k tokens gives k samples of gap/k; with only a total, the tokens after the
  first spread over the gaps in whole numbers that add up, so mean ITL = TPOT). ITL-chunk: the raw gaps.
- Schedule lag = actual send − intended send.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from loadgen.records import RequestRecord, TokenMethod


class ItlSplit(str, enum.Enum):
    """How the tokens of each chunk were known when dividing gaps for ITL."""

    SERVER_TOKENS = "server_token_counts"  # the stream said how many tokens each chunk holds
    ONE_PER_CHUNK = "one_token_per_chunk"  # total tokens == chunks, so one each (exact)
    EVEN_SPLIT = "even_split_estimate"  # total tokens spread evenly over chunks (an estimate)
    ASSUMED_ONE = "assumed_one_per_chunk"  # no token total known: one token per chunk assumed


def ttft_ns(record: RequestRecord) -> int | None:
    if record.first_token_ns is None:
        return None
    return record.first_token_ns - record.intended_ns


def ttfot_ns(record: RequestRecord) -> int | None:
    """Time to first *output* token: to the answer's first token, past a reasoning model's thinking
    (the same as TTFT for a stream without reasoning)."""
    if record.first_answer_ns is None:
        return None
    return record.first_answer_ns - record.intended_ns


def e2e_ns(record: RequestRecord) -> int | None:
    if record.end_ns is None:
        return None
    return record.end_ns - record.intended_ns


def tpot_ns(record: RequestRecord) -> float | None:
    """Time per output token after the first; None when the answer came in one piece (not
    streamed, or coalesced), which says nothing about per-token time."""
    tokens = record.output_tokens
    if record.first_token_ns is None or record.end_ns is None or tokens is None or tokens < 2:
        return None
    if len(record.chunk_ns) < 2:
        return None
    return (record.end_ns - record.first_token_ns) / (tokens - 1)


def schedule_lag_ns(record: RequestRecord) -> int | None:
    if record.sent_ns is None:
        return None
    return record.sent_ns - record.intended_ns


def itl_split(record: RequestRecord) -> ItlSplit:
    if record.chunk_tokens is not None:
        return ItlSplit.SERVER_TOKENS
    if record.output_token_method in (TokenMethod.CONTENT_CHUNKS, TokenMethod.UNAVAILABLE):
        return ItlSplit.ASSUMED_ONE
    if record.output_tokens == len(record.chunk_ns):
        return ItlSplit.ONE_PER_CHUNK
    return ItlSplit.EVEN_SPLIT


def itl_samples_ns(record: RequestRecord) -> Iterator[tuple[float, int]]:
    """(gap per token, number of tokens) for each gap between content chunks."""
    chunks = record.chunk_ns
    if len(chunks) < 2:
        return
    per_chunk = record.chunk_tokens
    if per_chunk is None:
        gaps = len(chunks) - 1
        after_first = (record.output_tokens or len(chunks)) - 1  # the first chunk's token is TTFT's
        if itl_split(record) is not ItlSplit.EVEN_SPLIT or after_first < gaps:
            after_first = gaps  # one token per chunk (known, assumed, or more chunks than tokens)
        # the tokens after the first spread over the gaps in whole numbers that add up exactly
        # (e.g. 63 over 45 gaps: 18 gaps of 2 and 27 of 1), not rounded to one number for all
        previous, given = chunks[0], 0
        for number, arrival in enumerate(chunks[1:], 1):
            tokens = after_first * number // gaps - given
            given += tokens
            yield (arrival - previous) / tokens, tokens
            previous = arrival
        return
    for position in range(1, len(chunks)):
        tokens = max(1, per_chunk[position])
        yield (chunks[position] - chunks[position - 1]) / tokens, tokens


def chunk_gaps_ns(record: RequestRecord) -> Iterator[int]:
    chunks = record.chunk_ns
    for position in range(1, len(chunks)):
        yield chunks[position] - chunks[position - 1]


def output_tokens_per_s(record: RequestRecord) -> float | None:
    e2e = e2e_ns(record)
    if not e2e or record.output_tokens is None or e2e <= 0:
        return None
    return record.output_tokens / (e2e / 1e9)


def meets_slo(record: RequestRecord, metric: str, threshold_ns: int) -> bool:
    value: float | None
    if metric == "ttft":
        value = ttft_ns(record)
    elif metric == "ttfot":
        value = ttfot_ns(record)
    elif metric == "tpot":
        value = tpot_ns(record)
    elif metric == "e2e":
        value = e2e_ns(record)
    elif metric == "itl":
        gaps = [gap for gap, _ in itl_samples_ns(record)]
        value = max(gaps) if gaps else None
    else:
        raise ValueError(f"unknown SLO metric {metric!r}")
    if value is None:
        # A one-token answer has no TPOT or ITL to miss; a missing first token misses TTFT.
        return metric in ("tpot", "itl")
    return value <= threshold_ns


@dataclass(frozen=True, slots=True)
class RequestFigures:
    """One request's latencies in ms, as every per-request view reads them (compare, the report, the
    export): None where not measured (no first token; TPOT of an answer that was not streamed)."""

    ttft_ms: float | None
    tpot_ms: float | None
    e2e_ms: float | None

    @classmethod
    def of(cls, record: RequestRecord) -> RequestFigures:
        ttft, tpot, e2e = ttft_ns(record), tpot_ns(record), e2e_ns(record)
        return cls(None if ttft is None else ttft / 1e6, None if tpot is None else tpot / 1e6,
                   None if e2e is None else e2e / 1e6)  # fmt: skip

    def metric(self, name: str) -> float | None:
        """``ttft``, ``tpot`` or ``e2e``."""
        value: float | None = {"ttft": self.ttft_ms, "tpot": self.tpot_ms, "e2e": self.e2e_ms}[name]
        return value
