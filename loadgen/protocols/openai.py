"""Protocols layer: OpenAI-compatible ``/v1/chat/completions`` and ``/v1/completions``.

Streams are SSE with one JSON chunk per ``data:`` line and a final ``data: [DONE]``. Role-only
first deltas and empty contents are not tokens; ``reasoning_content`` (or ``reasoning``) is
generated output and counts toward time to first token; an ``error`` object may arrive inside
the stream; the usage chunk (``stream_options.include_usage``) has empty ``choices``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.protocols.base import (
    JSON_HEADERS,
    TYPED_MISFITS,
    ContentChunk,
    Finish,
    GenerationParams,
    HttpRequest,
    ServerError,
    StreamEvent,
    Usage,
    WholeBodyDecoder,
    decode_json,
    encode_json,
    error_message_from_body,
    llama_cpp_timings,
    merge_batch_events,
    preview,
)
from loadgen.protocols.sse import SseDecoder

_loads = orjson.loads


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    role: Any = msgspec.UNSET  # present at all (even null): the role-only first delta, not a token
    tool_calls: Any = None


class _Choice(msgspec.Struct):
    text: str | None = None
    delta: _Delta | None = None
    finish_reason: str | None = None


class _StreamChunk(msgspec.Struct):
    """The fields of a streamed chunk the decoder reads (the others are skipped, not built): a
    chunk that does not fit these types goes the general way (``_handle_dict``)."""

    choices: list[_Choice] | None = None
    usage: dict[str, Any] | None = None
    error: Any = None
    timings: Any = None


_decode_chunk = msgspec.json.Decoder(_StreamChunk).decode


class OpenAICodec:
    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.name = "openai-chat" if chat else "openai-completions"
        self._path = "/v1/chat/completions" if chat else "/v1/completions"

    def build_request(self, prompt: Prompt, params: GenerationParams) -> HttpRequest:
        config = params.config
        body: dict[str, object] = {}
        if params.model:
            body["model"] = params.model
        if self.chat:
            body["messages"] = prompt.as_messages()
        else:
            body["prompt"] = prompt.texts if prompt.batch else prompt.as_text()
        max_tokens = params.max_tokens_for(prompt)
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if config.ignore_eos:
            body["ignore_eos"] = True
            if max_tokens is not None:
                body["min_tokens"] = max_tokens
        if config.temperature is not None:
            body["temperature"] = config.temperature
        body["stream"] = config.stream
        if config.stream:
            body["stream_options"] = {"include_usage": True}
        body.update(config.extra_body)
        return HttpRequest("POST", self._path, JSON_HEADERS, encode_json(body))

    def decoder(self, stream: bool, prompt: Prompt | None = None) -> OpenAIStreamDecoder | WholeBodyDecoder:
        if stream:
            return OpenAIStreamDecoder(self.chat)
        return WholeBodyDecoder(self._parse_body)

    def error_message(self, status: int, body: bytes) -> str:
        return error_message_from_body(body)

    def _parse_body(self, body: bytes) -> list[StreamEvent]:
        data = decode_json(body, "response body")
        if not isinstance(data, dict):
            raise ProtocolError("response body is not a JSON object")
        if "error" in data:
            return [ServerError(error_message_from_body(body))]
        events: list[StreamEvent] = []
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ProtocolError("response has no 'choices'")
        for choice in choices:  # several with a prompt list (--batch-size): one per prompt
            if not isinstance(choice, dict):
                raise ProtocolError("a choice is not a JSON object")
            _append_generated(choice, "message" if self.chat else None, events)
        events.append(Finish(choices[0].get("finish_reason")))
        usage = data.get("usage")
        if isinstance(usage, dict):
            events.append(_usage(usage))
        timings = llama_cpp_timings(data.get("timings"))
        if timings is not None:
            events.append(timings)
        return merge_batch_events(events) if len(choices) > 1 else events


class OpenAIStreamDecoder:
    def __init__(self, chat: bool) -> None:
        self._chat = chat
        self._sse = SseDecoder()
        self._done = False
        self._finished = False

    def feed(self, data: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        payload = self._sse.single_data(data)
        if payload is not None:  # one event per read: the common case, without a list of payloads
            self._handle(payload, events)
            return events
        for payload in self._sse.decode_data(data):
            self._handle(payload, events)
        return events

    def close(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for payload in self._sse.flush_data():
            self._handle(payload, events)
        if not self._done and not self._finished:
            raise ProtocolError("stream ended before [DONE] or a finish_reason")
        return events

    def _handle(self, data: bytes, events: list[StreamEvent]) -> None:
        """One chunk's events: decoded straight into the fields it needs (``_StreamChunk``); a chunk
        of other shapes (or not JSON) goes through ``_handle_dict``, which says what is wrong."""
        if data == b"[DONE]":
            self._done = True
            return
        try:
            chunk = _decode_chunk(data)
        except TYPED_MISFITS:
            self._handle_dict(data, events)
            return
        if chunk.error is not None:
            error = chunk.error
            message = error.get("message") if isinstance(error, dict) else error
            events.append(ServerError(str(message)))
            self._finished = True
            return
        for choice in chunk.choices or ():
            reason = choice.finish_reason
            if self._chat:
                delta = choice.delta
                if delta is not None:
                    reasoning = delta.reasoning_content or delta.reasoning
                    if reasoning:
                        events.append(ContentChunk(reasoning, reasoning=True))
                    text = delta.content
                    if text:
                        events.append(ContentChunk(text))
                    elif text is not None and not reason and delta.role is msgspec.UNSET and not delta.tool_calls:
                        events.append(ContentChunk(""))  # see _append_generated: an empty delta is a token
            else:
                text = choice.text
                if text:
                    events.append(ContentChunk(text))
                elif text is not None and not reason:
                    events.append(ContentChunk(""))
            if reason:
                self._finished = True
                events.append(Finish(reason))
        if chunk.usage is not None:
            events.append(_usage(chunk.usage))
        if chunk.timings is not None:  # llama-server's own account, in its last chunk
            timings = llama_cpp_timings(chunk.timings)
            if timings is not None:
                events.append(timings)

    def _handle_dict(self, data: bytes, events: list[StreamEvent]) -> None:
        """The general way: any JSON a server sends, checked field by field."""
        try:
            chunk = _loads(data)
        except ValueError:
            chunk = decode_json(data, "SSE data")  # raises with the message
        if type(chunk) is not dict:
            raise ProtocolError(f"SSE data is not a JSON object: {preview(data)!r}")
        error = chunk.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            events.append(ServerError(str(message)))
            self._finished = True
            return
        for choice in chunk.get("choices") or ():
            reason = choice.get("finish_reason")
            if self._chat:
                _append_generated(choice, "delta", events, streamed=True)
            else:  # the completions fast path: ``text`` (see _append_generated)
                text = choice.get("text")
                if text:
                    events.append(ContentChunk(text if type(text) is str else str(text)))
                elif text is not None and not reason:
                    # an empty text mid-stream still carries a token (vLLM's mid-UTF-8 character)
                    events.append(ContentChunk(""))
            if reason:
                self._finished = True
                events.append(Finish(reason))
        usage = chunk.get("usage")
        if usage is not None and type(usage) is dict:
            events.append(_usage(usage))
        if "timings" in chunk:  # llama-server's own account, in its last chunk
            timings = llama_cpp_timings(chunk["timings"])
            if timings is not None:
                events.append(timings)


def _usage(usage: dict[str, object]) -> Usage:
    """The usage block, with the prompt tokens served from the server's prefix cache when it says
    (``prompt_tokens_details.cached_tokens``, as vLLM and OpenAI report them)."""
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    completion_details = usage.get("completion_tokens_details")
    reasoning = completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return Usage(prompt if isinstance(prompt, int) else None, completion if isinstance(completion, int) else None,
                 cached if isinstance(cached, int) else None,
                 reasoning if isinstance(reasoning, int) else None)  # fmt: skip


def _append_generated(
    choice: dict[str, object], message_key: str | None, events: list[StreamEvent], streamed: bool = False
) -> None:
    """Reasoning and content of one choice: chat keeps them under ``message``/``delta``,
    completions under ``text``. In a stream, a delta with empty content still carries a token
    (vLLM sends one for a token that ends mid-UTF-8 character), unless it is the role-only first
    delta or a closing one (with ``finish_reason``); whole answers' empty strings are nothing."""
    if message_key is None:
        text = choice.get("text")
    else:
        message = choice.get(message_key) or {}
        if not isinstance(message, dict):
            raise ProtocolError(f"'{message_key}' is not an object")
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if reasoning:
            events.append(ContentChunk(str(reasoning), reasoning=True))
        text = message.get("content")
    if text:
        events.append(ContentChunk(str(text)))
    elif streamed and text is not None and message_key is not None and not choice.get("finish_reason"):
        message = choice.get(message_key)
        if isinstance(message, dict) and "role" not in message and not message.get("tool_calls"):
            events.append(ContentChunk(""))
