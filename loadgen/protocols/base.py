"""Protocols layer: the codec interface and the events a decoded response yields.

A codec is pure: ``build_request`` turns a prompt and generation parameters into an
``HttpRequest``; a ``Decoder`` is fed response bytes (split anywhere) and returns events. No
asyncio, sockets, clocks or logging here; the transport stamps arrival times before decoding.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import msgspec
import orjson

from loadgen.config import GenerationConfig
from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.records import SERVER_TIMING_PARTS


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class ContentChunk(NamedTuple):
    """Generated text. ``tokens`` is set only when the server says how many tokens it carries.

    A named tuple rather than a frozen dataclass: one is made per streamed chunk, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field) costs three times as much."""

    text: str
    tokens: int | None = None
    reasoning: bool = False
    logprob: float | None = None  # the token's log-probability, when the server returns it


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the server reports them; a count that is not a whole number ≥ 0 is the
    server's error (``ProtocolError``), never a figure (a negative count made negative tokens/s)."""

    prompt_tokens: int | None
    completion_tokens: int | None
    cached_prompt_tokens: int | None = None  # prompt tokens the server served from its prefix cache
    reasoning_tokens: int | None = None  # of the completion tokens, those spent reasoning

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "completion_tokens", "cached_prompt_tokens", "reasoning_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ProtocolError(f"the server reported {name} {value!r}: expected a whole number ≥ 0")


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str | None


@dataclass(frozen=True, slots=True)
class ServerError:
    """An error the server reported inside an otherwise successful (HTTP 2xx) response."""

    message: str


@dataclass(frozen=True, slots=True)
class ResponseComplete:
    """The response is whole although the connection may stay open (a gRPC stream): stop reading."""


@dataclass(frozen=True, slots=True)
class ServerTimings:
    """The server's own account of one request, where it gives one: llama.cpp's ``timings``
    (prompt and predicted ms in its last chunk), TGI's ``x-*-time`` response headers, or its
    OpenTelemetry span (``protocols.otlp.span_timings``). A part the server does not report is None."""

    source: str
    queue_ms: float | None = None
    prefill_ms: float | None = None
    decode_ms: float | None = None
    compute_ms: float | None = None  # prefill and decode together, where the server does not split them
    ttft_ms: float | None = None  # from its own arrival stamp to its first token
    total_ms: float | None = None

    def to_json_dict(self) -> dict[str, float | str | None]:
        return {"source": self.source, **{name: getattr(self, name) for name in SERVER_TIMING_PARTS}}


def llama_cpp_timings(timings: object) -> ServerTimings | None:
    """llama-server's ``timings``: ``prompt_ms`` (prefill) and ``predicted_ms`` (decode)."""
    if not isinstance(timings, dict):
        return None
    prefill, decode = milliseconds(timings.get("prompt_ms")), milliseconds(timings.get("predicted_ms"))
    if prefill is None and decode is None:
        return None
    total = prefill + decode if prefill is not None and decode is not None else None
    return ServerTimings("llama.cpp timings", prefill_ms=prefill, decode_ms=decode, total_ms=total)


TGI_TIMING_HEADERS = {"x-queue-time": "queue_ms", "x-inference-time": "compute_ms", "x-total-time": "total_ms"}


def tgi_header_timings(headers: Mapping[str, str]) -> ServerTimings | None:
    """TGI's response headers: ``x-queue-time``, ``x-inference-time`` (prefill and decode) and
    ``x-total-time``, in ms."""
    parts = {field: milliseconds(headers.get(name)) for name, field in TGI_TIMING_HEADERS.items()}
    if all(value is None for value in parts.values()):
        return None
    return ServerTimings("TGI x-*-time headers", **parts)


def milliseconds(value: object) -> float | None:
    """A non-negative, finite number of ms (a header's text too), else None: a server's odd value
    is not a figure."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, (int, float, str)) else None
    except ValueError:
        return None
    if number is None or not 0 <= number < 1e9:
        return None
    return number


StreamEvent = ContentChunk | Usage | Finish | ServerError | ResponseComplete | ServerTimings


@dataclass(frozen=True, slots=True)
class GenerationParams:
    model: str | None
    config: GenerationConfig

    def max_tokens_for(self, prompt: Prompt) -> int | None:
        return prompt.max_tokens if prompt.max_tokens is not None else self.config.max_tokens


class Decoder(Protocol):
    def feed(self, data: bytes) -> list[StreamEvent]:
        """Bytes as they arrived; returns the events they complete. Raises ProtocolError."""
        ...

    def close(self) -> list[StreamEvent]:
        """The connection ended; returns pending events. Raises ProtocolError if truncated."""
        ...


class Codec(Protocol):
    name: str

    def build_request(self, prompt: Prompt, params: GenerationParams) -> HttpRequest: ...

    def decoder(self, stream: bool, prompt: Prompt | None = None) -> Decoder:
        """A decoder for one response; ``prompt`` is the request's, for codecs whose responses echo it."""
        ...

    def error_message(self, status: int, body: bytes) -> str:
        """A short message from an HTTP error response's body."""
        ...


JSON_HEADERS = (("Content-Type", "application/json"),)
GRPC_STREAM = "GRPC_STREAM"  # HttpRequest.method for a gRPC bidirectional stream (path: the full method name)
GRPC_UNARY = "GRPC_UNARY"  # and for a unary gRPC call


def encode_json(body: dict[str, object]) -> bytes:
    return orjson.dumps(body)


_fast_loads: Callable[[str | bytes], object] = orjson.loads


def merge_extra_body(body: dict[str, object], parameters: dict[str, object],
                     extra: tuple[tuple[str, object], ...]) -> None:  # fmt: skip
    """``--extra-body`` for the ``{"inputs", "parameters"}`` schemas (TGI, LMI): a ``parameters``
    object merges into the parameters, any other key goes into the body."""
    for key, value in extra:
        if key == "parameters" and isinstance(value, dict):
            parameters.update(value)
        else:
            body[key] = value


# what a typed msgspec decoder raises for a payload of another shape (or not JSON): the caller
# then goes the general way, which says what is wrong
TYPED_MISFITS = (msgspec.ValidationError, msgspec.DecodeError)


def decode_json(data: str | bytes, what: str) -> object:
    try:
        return _fast_loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"{what} is not valid JSON ({exc}): {preview(data)!r}") from None


def preview(data: str | bytes, limit: int = 80) -> str:
    """The start of a payload, as text, for an error message."""
    return data[:limit] if isinstance(data, str) else data[:limit].decode("utf-8", "replace")


def error_message_from_body(body: bytes) -> str:
    """The ``error``/``message``/``detail`` field of a JSON error body, else the text, whole: it
    is shortened after redaction (``engine.request``), so a secret is never cut in two first."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "Message", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or json.dumps(value)
            if value:
                text = str(value)
                break
    elif text.lower().startswith(("<!doctype", "<html")):
        text = "HTML page: " + text
    return " ".join(text.split())


def merge_batch_events(events: list[StreamEvent]) -> list[StreamEvent]:
    """The whole answers to a batch of prompts as one response: one content chunk (texts joined
    by newlines; token counts summed when every part has one), one usage (summed), the first
    finish reason, and any errors."""
    chunks = [e for e in events if isinstance(e, ContentChunk)]
    usages = [e for e in events if isinstance(e, Usage)]
    finishes = [e for e in events if isinstance(e, Finish)]
    merged: list[StreamEvent] = [e for e in events if isinstance(e, ServerError)]
    if chunks:
        counts = [c.tokens for c in chunks]
        tokens = sum(c for c in counts if c is not None) if None not in counts else None
        merged.append(ContentChunk("\n".join(c.text for c in chunks), tokens=tokens))
    if usages:

        def total(values: list[int | None]) -> int | None:
            return None if None in values else sum(v for v in values if v is not None)

        merged.append(Usage(total([u.prompt_tokens for u in usages]), total([u.completion_tokens for u in usages])))
    return merged + finishes[:1]


class WholeBodyDecoder:
    """Adapts a parser of a complete (non-streamed) body to the Decoder interface."""

    def __init__(self, parse: Callable[[bytes], list[StreamEvent]], max_bytes: int = 256 * 1024 * 1024) -> None:
        self._parse = parse
        self._parts: list[bytes] = []
        self._size = 0
        self._max_bytes = max_bytes

    def feed(self, data: bytes) -> list[StreamEvent]:
        self._size += len(data)
        if self._size > self._max_bytes:
            raise ProtocolError(f"response body larger than {self._max_bytes} bytes")
        self._parts.append(data)
        return []

    def close(self) -> list[StreamEvent]:
        return self._parse(b"".join(self._parts))
