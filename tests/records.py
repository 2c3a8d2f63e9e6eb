"""Builders of request records with hand-chosen timings (ms in, ns stored)."""

from loadgen.errors import ErrorKind
from loadgen.records import RequestRecord, TokenMethod

MS = 1_000_000


def record(
    *,
    intended_ms: float = 0.0,
    sent_ms: float | None = None,
    chunks_ms: tuple[float, ...] = (),
    end_ms: float | None = None,
    chunk_tokens: list[int] | None = None,
    output_tokens: int | None = None,
    method: TokenMethod = TokenMethod.SERVER_USAGE,
    usage: int | None = None,
    input_tokens: int | None = 10,
    error: ErrorKind | None = None,
    warmup: bool = False,
    index: int = 0,
) -> RequestRecord:
    chunk_ns = [round(value * MS) for value in chunks_ms]
    if output_tokens is None:
        output_tokens = sum(chunk_tokens) if chunk_tokens else len(chunk_ns)
    if end_ms is None:
        end_ms = chunks_ms[-1] if chunks_ms else intended_ms
    return RequestRecord(
        index=index,
        prompt_id="p",
        warmup=warmup,
        intended_ns=round(intended_ms * MS),
        sent_ns=round((sent_ms if sent_ms is not None else intended_ms) * MS),
        first_byte_ns=chunk_ns[0] if chunk_ns else None,
        first_token_ns=chunk_ns[0] if chunk_ns else None,
        end_ns=round(end_ms * MS),
        chunk_ns=chunk_ns,
        chunk_tokens=chunk_tokens,
        input_tokens=input_tokens,
        input_token_method=TokenMethod.SERVER_USAGE if input_tokens is not None else TokenMethod.UNAVAILABLE,
        output_tokens=output_tokens,
        output_token_method=method,
        usage_output_tokens=usage
        if usage is not None
        else (output_tokens if method is TokenMethod.SERVER_USAGE else None),
        tokenizer_output_tokens=None,
        finish_reason="length" if error is None else None,
        error_kind=error,
        error=None if error is None else f"{error.value} happened",
        http_status=200,
    )
