"""Engine layer: execute one request and turn what happened into a ``RequestRecord``.

The hot path: the transport stamps each read on arrival; here the bytes are decoded and each
content chunk keeps the stamp of the read that completed it. Nothing else reads the clock
between a read and its stamp, so parsing time never lands in the measured latencies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadgen.clock import Clock
from loadgen.errors import ErrorKind, ProtocolError
from loadgen.parsing import public_url
from loadgen.prompts import Prompt
from loadgen.prompts.answers import answer_is_correct
from loadgen.protocols.base import (
    Codec,
    ContentChunk,
    Finish,
    GenerationParams,
    ResponseComplete,
    ServerError,
    ServerTimings,
    Usage,
    tgi_header_timings,
)
from loadgen.records import RequestRecord, TokenMethod
from loadgen.tokenizer import TokenCounter
from loadgen.transport.base import Transport, TransportFailure

ERROR_BODY_LIMIT_BYTES = 64 * 1024
WHOLE_BODIES_BUDGET_BYTES = 1024 * 1024 * 1024  # all non-streamed answers in flight, together
WHOLE_BODY_FLOOR_BYTES = 16 * 1024 * 1024


def body_limit_bytes(concurrent_requests: int) -> int:
    """The largest non-streamed answer one request may hold, so that all those in flight together
    stay within ``WHOLE_BODIES_BUDGET_BYTES`` (a compressed bomb at every user must not take the
    machine): 256 MiB alone, 64 MiB each at 16 users, never under 16 MiB."""
    return max(WHOLE_BODY_FLOOR_BYTES, min(256 * 1024 * 1024, WHOLE_BODIES_BUDGET_BYTES // max(1, concurrent_requests)))


@dataclass(frozen=True, slots=True)
class RequestContext:
    codec: Codec
    params: GenerationParams
    transport: Transport
    clock: Clock
    run_start_ns: int
    first_token_timeout_s: float
    token_counter: TokenCounter | None
    redact: Callable[[str], str]
    save_text: bool = False
    max_whole_body_bytes: int = 256 * 1024 * 1024  # a non-streamed answer is held whole: see body_limit_bytes
    stop_at_first_token: bool = False  # the preflight: the run's own request, read until its first token
    session_header: str | None = None  # sent with a session's id on each of its turns (KV-aware routers)
    trace_tag: str | None = None  # the level's 20 hex digits of each request's trace id (None: no traceparent)
    server_timings: bool = True  # keep the server's own account of a request (llama.cpp timings, TGI headers)


TRACE_INDEX_MASK = (1 << 44) - 1


def trace_id_for(tag: str, index: int, warmup: bool) -> str:
    """A request's W3C trace id: the level's tag (the command's 16 hex digits, the level's 4), then
    one for its kind (0 measured, 1 warm-up, f the preflight) and 11 for its index, so a span
    names the request it belongs to."""
    kind = "f" if index < 0 else "1" if warmup else "0"
    return f"{tag}{kind}{index & TRACE_INDEX_MASK:011x}"


def traceparent(trace_id: str) -> str:
    """The ``traceparent`` header of a request loadgen starts (sampled, so the server records it);
    its own span id is the trace id's last 16 digits, never all zero."""
    span_id = trace_id[16:] if trace_id[16:] != "0" * 16 else "0" * 15 + "1"
    return f"00-{trace_id}-{span_id}-01"


MAX_ERROR_CHARS = 300
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shorten(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """At most ``limit`` characters: its start and its end (a server's traceback says what went
    wrong in its last line), joined by an ellipsis."""
    if len(message) <= limit:
        return message
    head = limit // 3
    return message[:head] + " … " + message[-(limit - head - 3) :]


def printable(message: str) -> str:
    """Control characters (terminal escape sequences among them) shown as ``?``."""
    return CONTROL_CHARACTERS.sub("?", message)


class Attempt:
    """Mutable state of one request while it runs."""

    __slots__ = (
        "cached_input",
        "chunk_ns",
        "chunk_tokens",
        "complete",
        "connect_ns",
        "end_ns",
        "error",
        "error_kind",
        "finish_reason",
        "first_answer_ns",
        "first_byte_ns",
        "http_status",
        "logprob_count",
        "logprob_sum",
        "read_lag_ns",
        "reasoning_chunks",
        "reasoning_texts",
        "reasoning_tokens",
        "redact",
        "sent_ns",
        "server_timings",
        "texts",
        "timed_out",
        "tokens_known",
        "trace_id",
        "usage_input",
        "usage_output",
    )

    def __init__(self, keep_text: bool, redact: Callable[[str], str] | None = None) -> None:
        self.redact = redact
        self.sent_ns: int | None = None
        self.first_byte_ns: int | None = None
        self.end_ns: int | None = None
        self.chunk_ns: list[int] = []
        self.chunk_tokens: list[int] = []
        self.tokens_known = True
        self.texts: list[str] | None = [] if keep_text else None
        self.usage_input: int | None = None
        self.cached_input: int | None = None
        self.usage_output: int | None = None
        self.finish_reason: str | None = None
        self.error_kind: ErrorKind | None = None
        self.error: str | None = None
        self.http_status: int | None = None
        self.timed_out = False
        self.logprob_sum = 0.0
        self.logprob_count = 0
        self.complete = False
        self.connect_ns: int | None = None
        self.read_lag_ns: int | None = None
        self.first_answer_ns: int | None = None
        self.reasoning_chunks = 0
        self.reasoning_tokens: int | None = None  # the server's count (usage), when it gives one
        self.reasoning_texts: list[str] | None = [] if keep_text else None
        self.trace_id: str | None = None
        self.server_timings: ServerTimings | None = None  # the server's own account, where it gives one

    def fail(self, kind: ErrorKind, message: str) -> None:
        """The first failure wins; its message is redacted here, so a server's own error text (an
        error event echoing the request, with its key) is covered like loadgen's messages, and
        only then shortened (a secret cut in two would no longer match) and cleaned of control
        characters (a server's terminal escape sequences never reach the terminal)."""
        if self.error_kind is None:
            self.error_kind = kind
            self.error = printable(shorten(self.redact(message) if self.redact is not None else message))

    def on_read(self, events: list[Any], t_ns: int) -> bool:
        """One read of the body, stamped ``t_ns``, decoded into ``events``; True once the response is whole."""
        if self.first_byte_ns is None:
            self.first_byte_ns = t_ns
        self.apply(events, t_ns)
        if self.complete:
            self.end_ns = t_ns
        return self.complete

    def apply(self, events: list[Any], t_ns: int) -> None:
        for event in events:
            if type(event) is ContentChunk:
                self.chunk_ns.append(t_ns)
                if event.tokens is None:
                    self.tokens_known = False
                else:
                    self.chunk_tokens.append(event.tokens)
                if event.reasoning:  # thinking before the answer: a token, not the answer's text
                    self.reasoning_chunks += event.tokens if event.tokens is not None else 1
                    if self.reasoning_texts is not None:
                        self.reasoning_texts.append(event.text)
                    continue
                if self.first_answer_ns is None:
                    self.first_answer_ns = t_ns
                if self.texts is not None:
                    self.texts.append(event.text)
                if event.logprob is not None:
                    self.logprob_sum += event.logprob
                    self.logprob_count += 1
            elif type(event) is Usage:
                if event.prompt_tokens is not None:
                    self.usage_input = event.prompt_tokens
                if event.cached_prompt_tokens is not None:
                    self.cached_input = event.cached_prompt_tokens
                if event.completion_tokens is not None:
                    self.usage_output = event.completion_tokens
                if event.reasoning_tokens is not None:
                    self.reasoning_tokens = event.reasoning_tokens
            elif type(event) is Finish:
                self.finish_reason = event.reason
            elif type(event) is ServerError:
                self.fail(ErrorKind.SERVER_ERROR, event.message)
            elif type(event) is ResponseComplete:
                self.complete = True
            elif type(event) is ServerTimings:
                self.server_timings = event


async def execute_request(
    ctx: RequestContext,
    index: int,
    prompt: Prompt,
    intended_ns: int,
    warmup: bool,
    publish: Callable[[RequestRecord], None],
    answer: list[str] | None = None,
) -> int | None:
    """Run one request to its end and publish its record; a cancelled request is published too.
    Returns when it ended (the arrival of its last byte), on the context's clock. ``answer``: a list
    the answer's text is appended to (a session's next turn sends it back)."""
    keep_text = ctx.token_counter is not None or ctx.save_text or prompt.expected is not None or answer is not None
    attempt = Attempt(keep_text, ctx.redact)
    if ctx.trace_tag is not None:
        attempt.trace_id = trace_id_for(ctx.trace_tag, index, warmup)
    try:
        await _exchange(ctx, prompt, attempt)
    except asyncio.CancelledError:
        attempt.fail(ErrorKind.CANCELLED, "cancelled at the end of the run")
        attempt.end_ns = ctx.clock.now_ns()
        publish(
            to_record(ctx.run_start_ns, ctx.token_counter, ctx.save_text, index, prompt, intended_ns, warmup, attempt)
        )
        raise
    if not ctx.server_timings:
        attempt.server_timings = None
    publish(to_record(ctx.run_start_ns, ctx.token_counter, ctx.save_text, index, prompt, intended_ns, warmup, attempt))
    if answer is not None and attempt.texts is not None:
        answer.append("".join(attempt.texts))
    return attempt.end_ns


async def _exchange(ctx: RequestContext, prompt: Prompt, attempt: Attempt) -> None:
    codec = ctx.codec
    http_request = codec.build_request(prompt, ctx.params)
    extra_headers: tuple[tuple[str, str], ...] = ()
    if ctx.session_header and prompt.session is not None:
        extra_headers += ((ctx.session_header, prompt.session),)
    if attempt.trace_id is not None:
        extra_headers += (("traceparent", traceparent(attempt.trace_id)),)
    if extra_headers:
        http_request = dataclasses.replace(http_request, headers=(*http_request.headers, *extra_headers))
    decoder = codec.decoder(ctx.params.config.stream, prompt)
    now_ns = ctx.clock.now_ns
    attempt.sent_ns = now_ns()
    reader: _BodyReader | None = None
    try:
        response = await ctx.transport.open(http_request)
        if response.sent_ns is not None:
            attempt.sent_ns = response.sent_ns
        attempt.connect_ns = response.connect_ns
        attempt.http_status = response.status
        attempt.server_timings = tgi_header_timings(response.headers)
        if 300 <= response.status < 400:
            attempt.end_ns = now_ns()
            location = public_url(response.headers.get("location", "")) or "nowhere"
            attempt.fail(ErrorKind.REDIRECT, ctx.redact(f"HTTP {response.status} redirect to {location}, not followed "
                                                        "(loadgen measures the URL it was given)"))  # fmt: skip
            response.abort()
            return
        if response.status < 300 and ctx.params.config.stream and response.content_type.startswith("text/html"):
            attempt.end_ns = now_ns()
            attempt.fail(ErrorKind.PROTOCOL_ERROR, "the server answered a streamed request with an HTML page "
                         "(text/html), not a stream: check --endpoint and --api")  # fmt: skip
            response.abort()
            return
        if response.status >= 300:
            body = await response.read_body(ERROR_BODY_LIMIT_BYTES)
            attempt.end_ns = now_ns()
            message = f"HTTP {response.status}: {codec.error_message(response.status, body)}"
            attempt.fail(ErrorKind.from_http_status(response.status), ctx.redact(message))
            return

        def on_first_token_timeout() -> None:
            attempt.timed_out = True
            response.abort()

        reader = _BodyReader(attempt, decoder.feed, None if ctx.params.config.stream else ctx.max_whole_body_bytes)
        reader.stop_at_first_token = ctx.stop_at_first_token
        reader.timer = asyncio.get_running_loop().call_later(ctx.first_token_timeout_s, on_first_token_timeout)
        try:
            await response.deliver(reader)
        finally:
            attempt.read_lag_ns = response.read_lag_max_ns
        if reader.stopped_early:
            return  # the rest of the answer was not read: there is no end of stream to check
        end_ns = attempt.end_ns if attempt.complete and attempt.end_ns is not None else now_ns()
        attempt.end_ns = end_ns
        attempt.apply(decoder.close(), end_ns)
    except TransportFailure as failure:
        attempt.end_ns = now_ns()
        attempt.fail(failure.kind, ctx.redact(failure.message))
    except ProtocolError as exc:
        attempt.end_ns = now_ns()
        attempt.fail(ErrorKind.PROTOCOL_ERROR, ctx.redact(str(exc)))
    finally:
        if reader is not None and reader.timer is not None:
            reader.timer.cancel()
    if attempt.timed_out and not attempt.chunk_ns:
        attempt.error_kind = None
        attempt.fail(ErrorKind.TIMEOUT, f"no token within {ctx.first_token_timeout_s:g}s (first-token timeout)")


class _BodyReader:
    """The sink a response's body goes to: decodes each piece as it is read (in the transport's
    read callback, where it carries its arrival stamp) and stops the first-token timer."""

    __slots__ = ("attempt", "feed", "limit_bytes", "received_bytes", "stop_at_first_token", "stopped_early", "timer")

    def __init__(self, attempt: Attempt, feed: Callable[[bytes], list[Any]],
                 limit_bytes: int | None = None) -> None:  # fmt: skip
        self.attempt = attempt
        self.feed = feed
        self.limit_bytes = limit_bytes  # for answers held whole; a stream is decoded as it comes
        self.received_bytes = 0
        self.stop_at_first_token = False
        self.stopped_early = False
        self.timer: asyncio.TimerHandle | None = None

    def __call__(self, arrival_ns: int, data: bytes) -> bool:
        attempt = self.attempt
        if self.limit_bytes is not None:
            self.received_bytes += len(data)
            if self.received_bytes > self.limit_bytes:
                raise ProtocolError(f"response body larger than {self.limit_bytes // (1024 * 1024)} MiB, the share "
                                    "of each request in flight (bodies held whole are capped together)")  # fmt: skip
        events = self.feed(data)
        if attempt.first_byte_ns is None:  # Attempt.on_read, inlined: this runs for every read
            attempt.first_byte_ns = arrival_ns
        attempt.apply(events, arrival_ns)
        if self.timer is not None and attempt.chunk_ns:
            self.timer.cancel()
            self.timer = None
        if attempt.complete:
            attempt.end_ns = arrival_ns
            return True
        if self.stop_at_first_token and attempt.chunk_ns:
            attempt.end_ns = arrival_ns
            self.stopped_early = True
            return True
        return False


def to_record(
    run_start_ns: int,
    counter: TokenCounter | None,
    save_text: bool,
    index: int,
    prompt: Prompt,
    intended_ns: int,
    warmup: bool,
    attempt: Attempt,
) -> RequestRecord:
    """What happened to one request, times relative to ``run_start_ns``, tokens counted by the best
    method available (shared by the asyncio engine and the Locust users)."""
    start = run_start_ns

    def rel(value: int | None) -> int | None:
        return None if value is None else value - start

    tokenizer_output = None
    text = "".join(attempt.texts) if attempt.texts is not None else None
    if counter is not None and text is not None:
        reasoning = "".join(attempt.reasoning_texts) if attempt.reasoning_texts else ""
        tokenizer_output = counter.count(text) + (counter.count(reasoning) if reasoning else 0)
    correct = None
    if prompt.expected is not None and text is not None and attempt.error_kind is None:
        correct = answer_is_correct(text, list(prompt.expected) if isinstance(prompt.expected, tuple)
                                    else prompt.expected, prompt.match)  # fmt: skip
    chunks = attempt.chunk_ns
    chunk_tokens = attempt.chunk_tokens if attempt.tokens_known and chunks else None
    if attempt.usage_output is not None:
        output_tokens, output_method = attempt.usage_output, TokenMethod.SERVER_USAGE
    elif chunk_tokens is not None:
        output_tokens, output_method = sum(chunk_tokens), TokenMethod.SERVER_TOKENS
    elif tokenizer_output is not None:
        output_tokens, output_method = tokenizer_output, TokenMethod.TOKENIZER
    else:
        output_tokens, output_method = len(chunks), TokenMethod.CONTENT_CHUNKS
    if attempt.usage_input is not None:
        input_tokens, input_method = attempt.usage_input, TokenMethod.SERVER_USAGE
    elif counter is not None:
        input_tokens, input_method = counter.count(prompt.as_text()), TokenMethod.TOKENIZER
    else:
        input_tokens, input_method = None, TokenMethod.UNAVAILABLE
    return RequestRecord(
        index=index,
        prompt_id=prompt.id,
        warmup=warmup,
        intended_ns=intended_ns - start,
        sent_ns=rel(attempt.sent_ns),
        first_byte_ns=rel(attempt.first_byte_ns),
        first_token_ns=rel(chunks[0]) if chunks else None,
        end_ns=rel(attempt.end_ns),
        chunk_ns=[t - start for t in chunks],
        chunk_tokens=chunk_tokens,
        input_tokens=input_tokens,
        input_token_method=input_method,
        output_tokens=output_tokens,
        output_token_method=output_method,
        usage_output_tokens=attempt.usage_output,
        tokenizer_output_tokens=tokenizer_output,
        finish_reason=attempt.finish_reason,
        error_kind=attempt.error_kind,
        error=attempt.error,
        http_status=attempt.http_status,
        mean_logprob=attempt.logprob_sum / attempt.logprob_count if attempt.logprob_count else None,
        output_text=text if save_text or prompt.expected is not None else None,
        correct=correct,
        connect_ns=attempt.connect_ns,
        read_lag_ns=attempt.read_lag_ns,
        cached_input_tokens=attempt.cached_input,
        first_answer_ns=rel(attempt.first_answer_ns),
        reasoning_tokens=_reasoning_tokens(attempt),
        session=prompt.session,
        turn=prompt.turn,
        server_timings=attempt.server_timings.to_json_dict() if attempt.server_timings is not None else None,
        trace_id=attempt.trace_id,
    )


def _reasoning_tokens(attempt: Attempt) -> int | None:
    """The server's count of reasoning tokens when it gives one, else the reasoning chunks (one
    token each, as vLLM and SGLang stream them); None when the stream carried no reasoning."""
    if attempt.reasoning_tokens is not None:
        return attempt.reasoning_tokens
    return attempt.reasoning_chunks or None
