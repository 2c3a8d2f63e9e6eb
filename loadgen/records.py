"""Shared bottom layer: what one request left behind.

A ``RequestRecord`` is written once, when its request ends, to ``requests.jsonl`` and fed to the
metrics. All times are integer nanoseconds relative to the run's start on the monotonic clock; a
value that was not measured is ``None``, never 0.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from loadgen.errors import ErrorKind


class TokenMethod(str, enum.Enum):
    """How a token count was obtained, from most to least authoritative."""

    SERVER_USAGE = "server_usage"  # the server's usage / details block
    SERVER_TOKENS = "server_token_events"  # the stream carries one event per token (TGI, LMI)
    TOKENIZER = "tokenizer"  # a tokenizer the user named, run on the text
    CONTENT_CHUNKS = "content_chunks"  # one token per non-empty content chunk (a guess)
    UNAVAILABLE = "unavailable"


# a record's server_timings
SERVER_TIMING_PARTS = ("queue_ms", "prefill_ms", "decode_ms", "compute_ms", "ttft_ms", "total_ms")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    index: int
    prompt_id: str
    warmup: bool
    intended_ns: int
    sent_ns: int | None
    first_byte_ns: int | None
    first_token_ns: int | None
    end_ns: int | None
    chunk_ns: list[int]
    chunk_tokens: list[int] | None
    input_tokens: int | None
    input_token_method: TokenMethod
    output_tokens: int | None
    output_token_method: TokenMethod
    usage_output_tokens: int | None
    tokenizer_output_tokens: int | None
    finish_reason: str | None
    error_kind: ErrorKind | None
    error: str | None
    http_status: int | None
    mean_logprob: float | None = None  # mean log-probability of the output tokens, when returned
    output_text: str | None = None  # kept with --save-text, or when the prompt has an expected answer
    correct: bool | None = None  # the answer matched the prompt's expected answer (None: not checked)
    connect_ns: int | None = None  # time spent opening a connection for it during the load (None: reused)
    read_lag_ns: int | None = None  # longest arrival-to-read delay of its bytes (kernel stamps only)
    cached_input_tokens: int | None = None  # prompt tokens served from the server's prefix cache (usage)
    # reasoning models stream thinking before the answer: the first answer token, and how many of the
    # output tokens were reasoning (None: the stream carried none)
    first_answer_ns: int | None = None
    reasoning_tokens: int | None = None
    session: str | None = None  # a multi-turn session's instance, and the turn within it (1-based)
    turn: int | None = None
    # the server's own account (llama.cpp timings, TGI headers, a joined span): source and SERVER_TIMING_PARTS
    server_timings: dict[str, float | str | None] | None = None
    trace_id: str | None = None  # of the traceparent it was sent with (32 hex digits)

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    def to_json_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "prompt_id": self.prompt_id,
            "warmup": self.warmup,
            "intended_ns": self.intended_ns,
            "sent_ns": self.sent_ns,
            "first_byte_ns": self.first_byte_ns,
            "first_token_ns": self.first_token_ns,
            "end_ns": self.end_ns,
            "chunk_ns": self.chunk_ns,
            "chunk_tokens": self.chunk_tokens,
            "input_tokens": self.input_tokens,
            "input_token_method": self.input_token_method.value,
            "output_tokens": self.output_tokens,
            "output_token_method": self.output_token_method.value,
            "usage_output_tokens": self.usage_output_tokens,
            "tokenizer_output_tokens": self.tokenizer_output_tokens,
            "finish_reason": self.finish_reason,
            "error_kind": self.error_kind.value if self.error_kind else None,
            "error": self.error,
            "http_status": self.http_status,
            "mean_logprob": self.mean_logprob,
            "output_text": self.output_text,
            "correct": self.correct,
            "connect_ns": self.connect_ns,
            "read_lag_ns": self.read_lag_ns,
            "cached_input_tokens": self.cached_input_tokens,
            "first_answer_ns": self.first_answer_ns,
            "reasoning_tokens": self.reasoning_tokens,
            "session": self.session,
            "turn": self.turn,
            "server_timings": self.server_timings,
            "trace_id": self.trace_id,
        }

    @classmethod
    def from_json_dict(cls, data: dict[str, object]) -> RequestRecord:
        """Checked field by field: ``msgspec.ValidationError`` names the one that does not fit."""
        return msgspec.convert(data, cls)
