"""Triton protocol over HTTP: the generate extension (``generate``, ``generate_stream``) and KServe v2 ``infer``."""

from __future__ import annotations

from typing import Any

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
    WholeBodyDecoder,
    decode_json,
    encode_json,
    error_message_from_body,
    preview,
)
from loadgen.protocols.sse import SseDecoder
from loadgen.protocols.triton.options import TritonOptions, model_path
from loadgen.protocols.triton.signature import ModelSignature
from loadgen.protocols.triton.tensors import Encode, RequestValues, build_tensors, field_specs


class TritonGenerateCodec:
    """``/generate`` and ``/generate_stream``: the input fields as top-level JSON keys."""

    name = "triton-generate"

    def __init__(self, options: TritonOptions | None = None) -> None:
        self.options = options or TritonOptions()

    def build_request(self, prompt: Prompt, params: GenerationParams) -> HttpRequest:
        stream = params.config.stream
        values = RequestValues(prompt, params, stream, None)
        body: dict[str, object] = {}
        for spec in field_specs(self.options, values):
            body[spec.name] = values.resolve(spec.value)
        for key, value in params.config.extra_body:
            body[key] = value
        path = model_path(params.model, self.options) + ("/generate_stream" if stream else "/generate")
        return HttpRequest("POST", path, JSON_HEADERS, encode_json(body))

    def decoder(self, stream: bool, prompt: Prompt | None = None) -> TritonGenerateStreamDecoder | WholeBodyDecoder:
        output = self.options.output_name
        if stream:
            return TritonGenerateStreamDecoder(output)
        return WholeBodyDecoder(lambda body: _generate_events(decode_json(body, "response body"), output, body))

    def error_message(self, status: int, body: bytes) -> str:
        return error_message_from_body(body)


def _generate_events(message: object, output: str, raw: str | bytes) -> list[StreamEvent]:
    if not isinstance(message, dict):
        raise ProtocolError(f"response is not a JSON object: {preview(raw)!r}")
    if "error" in message:
        return [ServerError(str(message["error"]))]
    if output not in message:
        keys = ", ".join(k for k in message if k not in ("model_name", "model_version"))
        raise ProtocolError(f"response has no {output!r} field (it has: {keys or 'none'}); set triton.text_output")
    value = message[output]
    if isinstance(value, list):
        value = "".join(str(v) for v in value)
    text = str(value) if value is not None else ""
    events: list[StreamEvent] = [ContentChunk(text)] if text else []
    reason = message.get("finish_reason")
    if isinstance(reason, list):
        reason = reason[0] if reason else None
    if reason is not None:
        events.append(Finish(str(reason)))
    return events


class TritonGenerateStreamDecoder:
    def __init__(self, output: str) -> None:
        self._sse = SseDecoder()
        self._output = output
        self._responses = 0

    def feed(self, data: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for payload in self._sse.decode_data(data):
            events += self._handle(payload)
        return events

    def close(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for payload in self._sse.flush_data():
            events += self._handle(payload)
        if self._sse.truncated:
            raise ProtocolError("stream ended inside an SSE event")
        if self._responses == 0:
            raise ProtocolError("stream ended without a response")
        return events

    def _handle(self, data: bytes) -> list[StreamEvent]:
        self._responses += 1
        return _generate_events(decode_json(data, "SSE data"), self._output, data)


class TritonInferCodec:
    """KServe v2 ``infer`` over HTTP with JSON tensors. Not streamed: TTFT equals end-to-end."""

    name = "triton-infer"

    def __init__(self, options: TritonOptions | None = None, signature: ModelSignature | None = None,
                 encode: Encode | None = None) -> None:  # fmt: skip
        self.options = options or TritonOptions()
        self.signature = signature
        self._encode = encode

    def build_request(self, prompt: Prompt, params: GenerationParams) -> HttpRequest:
        values = RequestValues(prompt, params, False, self._encode)
        tensors = build_tensors(self.options, self.signature, values, params.config.extra_body)
        body = {
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape),
                        "data": [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in t.values]}
                       for t in tensors],
            "outputs": [{"name": self.options.output_name}],
        }  # fmt: skip
        return HttpRequest("POST", model_path(params.model, self.options) + "/infer", JSON_HEADERS, encode_json(body))

    def decoder(self, stream: bool, prompt: Prompt | None = None) -> WholeBodyDecoder:
        input_length = self._input_length(prompt)

        def parse(body: bytes) -> list[StreamEvent]:
            data = decode_json(body, "response body")
            if not isinstance(data, dict):
                raise ProtocolError("response body is not a JSON object")
            if "error" in data:
                return [ServerError(str(data["error"]))]
            outputs = data.get("outputs")
            if not isinstance(outputs, list):
                raise ProtocolError("response has no 'outputs' list")
            for output in outputs:
                if isinstance(output, dict) and output.get("name") == self.options.output_name:
                    return output_events(str(output.get("datatype")), list(output.get("data") or []), input_length)
            raise ProtocolError(f"response has no output {self.options.output_name!r}")

        return WholeBodyDecoder(parse)

    def _input_length(self, prompt: Prompt | None) -> int:
        if not self.options.output_includes_input or prompt is None or self._encode is None:
            return 0
        return len(self._encode(prompt.as_text()))

    def error_message(self, status: int, body: bytes) -> str:
        return error_message_from_body(body)


def output_events(datatype: str, values: list[Any], input_length: int = 0) -> list[StreamEvent]:
    """An output tensor's values as events: text for BYTES, a token count for token ids."""
    if datatype == "BYTES":
        text = "\n".join(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values)
        return [ContentChunk(text)] if text else []
    generated = max(len(values) - input_length, 0)
    return [ContentChunk("", tokens=generated)] if generated else []
