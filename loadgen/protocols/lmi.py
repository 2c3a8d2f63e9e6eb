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
)

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
        body: dict[str, object] = {"inputs": prompt.as_text(), "parameters": parameters}
        if config.stream:
            body["stream"] = True
        for key, value in config.extra_body:
            if key == "parameters" and isinstance(value, dict):
                parameters.update(value)
            else:
                body[key] = value
        return HttpRequest("POST", self.path, JSON_HEADERS, encode_json(body))

    def decoder(self, stream: bool) -> LmiStreamDecoder | WholeBodyDecoder:
        return LmiStreamDecoder() if stream else WholeBodyDecoder(parse_lmi_body)

    def error_message(self, status: int, body: bytes) -> str:
        return error_message_from_body(body)


def _details(details: object) -> list[StreamEvent]:
    if not isinstance(details, dict):
        return []
    return [Usage(None, details.get("generated_tokens")), Finish(details.get("finish_reason"))]


def parse_lmi_body(body: bytes) -> list[StreamEvent]:
    data = decode_json(body, "response body")
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        raise ProtocolError("response body is not a JSON object")
    if "error" in data:
        return [ServerError(str(data["error"]))]
    text = data.get("generated_text")
    if text is None and isinstance(data.get("outputs"), list) and data["outputs"]:
        text = data["outputs"][0]
    if not isinstance(text, str):
        raise ProtocolError("response has no 'generated_text' (or 'outputs')")
    events: list[StreamEvent] = [ContentChunk(text)] if text else []
    return events + _details(data.get("details"))


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
        message = decode_json(line, "JSON line")
        if not isinstance(message, dict):
            raise ProtocolError(f"JSON line is not an object: {line[:80]!r}")
        if "error" in message:
            events.append(ServerError(str(message["error"])))
            self._finished = True
            return
        token = message.get("token")
        if isinstance(token, dict):
            text = token.get("text") or ""
            if text and not token.get("special"):
                logprob = token.get("log_prob", token.get("logprob"))
                events.append(ContentChunk(text, tokens=1, logprob=float(logprob) if logprob is not None else None))
        elif token is not None:
            raise ProtocolError(f"'token' is not an object: {line[:80]!r}")
        if message.get("generated_text") is not None or message.get("details") is not None:
            self._finished = True
            events.extend(_details(message.get("details")))
