"""Protocols layer: the native schema of AWS Large Model Inference (DJL Serving) containers.

Request: ``{"inputs": …, "parameters": {"max_new_tokens": …, "details": true, …}, "stream": …}``.
Streamed responses are JSON lines (``application/jsonlines``), one token per line in the
rolling-batch form: ``{"token": {"id", "text", "log_prob"}, "generated_text": null, "details":
null}``, the last line carrying ``generated_text`` and ``details`` (``finish_reason``,
``generated_tokens``). Whole responses: ``{"generated_text": …, "details": …}``, or the older
dynamic-batch forms ``[{"generated_text": …}]`` and ``{"outputs": […]}``. Errors:
``{"error": …, "code": …}``.
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
from loadgen.protocols.token_stream import generated_body_events, token_message

MAX_LINE_BYTES = 64 * 1024 * 1024


class LmiCodec:
    name = "lmi"

    def __init__(self, path: str = "/invocations") -> None:
        self.path = path

    def build_request(self, prompt: Prompt, params: GenerationParams) -> HttpRequest:
        config = params.config
        parameters: dict[str, object] = {"details": True}
        max_tokens = params.max_tokens_for(prompt)
        if max_tokens is not None:
            parameters["max_new_tokens"] = max_tokens
        if config.ignore_eos:
            parameters["ignore_eos"] = True
            if max_tokens is not None:
                parameters["min_new_tokens"] = max_tokens
        if config.temperature is not None:
            parameters["temperature"] = config.temperature
            parameters["do_sample"] = config.temperature > 0
        inputs: object = prompt.texts if prompt.batch else prompt.as_text()
        body: dict[str, object] = {"inputs": inputs, "parameters": parameters}
        if config.stream:
            body["stream"] = True
        merge_extra_body(body, parameters, config.extra_body)
        return HttpRequest("POST", self.path, JSON_HEADERS, encode_json(body))

    def decoder(self, stream: bool, prompt: Prompt | None = None) -> LmiStreamDecoder | WholeBodyDecoder:
        return LmiStreamDecoder() if stream else WholeBodyDecoder(parse_lmi_body)

    def error_message(self, status: int, body: bytes) -> str:
        return error_message_from_body(body)


def parse_lmi_body(body: bytes) -> list[StreamEvent]:
    return generated_body_events(body, outputs_form=True)


class LmiStreamDecoder:
    """JSON lines, split anywhere; one token event per line."""

    def __init__(self) -> None:
        self._buffer = b""
        self._finished = False

    def feed(self, data: bytes) -> list[StreamEvent]:
        buffer = self._buffer + data if self._buffer else data
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        if len(self._buffer) > MAX_LINE_BYTES:
            raise ProtocolError(f"JSON line longer than {MAX_LINE_BYTES} bytes")
        events: list[StreamEvent] = []
        for line in lines:
            if line.strip():
                self._handle(line, events)
        return events

    def close(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if self._buffer.strip():
            self._handle(self._buffer, events)  # the last line may lack its newline
            self._buffer = b""
        if not self._finished:
            raise ProtocolError("stream ended before the final line with generated_text")
        return events

    def _handle(self, line: bytes, events: list[StreamEvent]) -> None:
        if token_message(line, "JSON line", events):
            self._finished = True
