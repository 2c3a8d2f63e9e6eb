"""Protocols layer: Hugging Face Text Generation Inference ``/generate`` and ``/generate_stream``.

The stream sends one SSE event per token: ``{"token": {"id", "text", "logprob", "special"},
"generated_text": null, "details": null}``; the last event carries ``generated_text`` and
``details`` (``finish_reason``, ``generated_tokens``). Special tokens (EOS) are tokens but not
content. Errors arrive as ``{"error": ..., "error_type": ...}``.
"""

from __future__ import annotations

from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.protocols.base import (
    JSON_HEADERS,
    GenerationParams,
    HttpRequest,
    StreamEvent,
    WholeBodyDecoder,
    encode_json,
    error_message_from_body,
    merge_extra_body,
)
from loadgen.protocols.sse import SseDecoder
from loadgen.protocols.token_stream import generated_body_events, token_message


class TgiCodec:
    name = "tgi"

    def build_request(self, prompt: Prompt, params: GenerationParams) -> HttpRequest:
        config = params.config
        parameters: dict[str, object] = {"details": True}
        max_tokens = params.max_tokens_for(prompt)
        if max_tokens is not None:
            parameters["max_new_tokens"] = max_tokens
        if config.ignore_eos:
            parameters["ignore_eos"] = True
        if config.temperature is not None and config.temperature > 0:
            parameters["temperature"] = config.temperature
            parameters["do_sample"] = True
        body: dict[str, object] = {"inputs": prompt.as_text(), "parameters": parameters}
        merge_extra_body(body, parameters, config.extra_body)
        path = "/generate_stream" if config.stream else "/generate"
        return HttpRequest("POST", path, JSON_HEADERS, encode_json(body))

    def decoder(self, stream: bool, prompt: Prompt | None = None) -> TgiStreamDecoder | WholeBodyDecoder:
        return TgiStreamDecoder() if stream else WholeBodyDecoder(generated_body_events)

    def error_message(self, status: int, body: bytes) -> str:
        return error_message_from_body(body)


class TgiStreamDecoder:
    def __init__(self) -> None:
        self._sse = SseDecoder()
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
        if not self._finished:
            raise ProtocolError("stream ended before the final event with generated_text")
        return events

    def _handle(self, data: bytes, events: list[StreamEvent]) -> None:
        if token_message(data, "SSE data", events):
            self._finished = True
