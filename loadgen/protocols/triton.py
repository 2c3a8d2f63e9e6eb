"""Protocols layer: NVIDIA Triton Inference Server, pure (no sockets, no clocks).

Three APIs:

- ``triton-generate``: the HTTP generate extension, ``POST /v2/models/{m}[/versions/{v}]/generate``
  (one JSON object) and ``/generate_stream`` (SSE, one ``data:`` object per model response, no
  ``[DONE]``: the stream just ends; an error arrives as ``data: {"error": …}``).
- ``triton-infer``: KServe v2 ``infer`` over HTTP, tensors as JSON.
- ``triton-grpc``: KServe v2 over gRPC: ``ModelStreamInfer`` for decoupled models (one response per
  token or chunk; the last is flagged ``triton_final_response``) and ``ModelInfer`` otherwise. The
  request bodies are serialized protobuf messages; the gRPC transport sends them as they are.

Which inputs a model takes differs by backend, so the field names come from ``TritonOptions``
(presets for TensorRT-LLM ensembles, the vLLM backend and FasterTransformer/NeMo models), and the
datatypes and shapes from the model's own metadata, fetched before the run (``ModelSignature``),
unless the scenario gives a full tensor template.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.protocols.base import (
    GRPC_STREAM,
    GRPC_UNARY,
    JSON_HEADERS,
    ContentChunk,
    Finish,
    GenerationParams,
    HttpRequest,
    ResponseComplete,
    ServerError,
    StreamEvent,
    WholeBodyDecoder,
    decode_json,
    encode_json,
    error_message_from_body,
    preview,
)
from loadgen.protocols.sse import SseDecoder

PLACEHOLDERS = ("$prompt", "$max_tokens", "$input_ids", "$input_length", "$ignore_eos", "$temperature", "$stream")
DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
             "BYTES")  # fmt: skip
STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"
INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input of a request template. ``value`` is a literal or a placeholder such as
    ``$prompt``; ``datatype``/``shape`` None: take them from the model's metadata."""

    name: str
    value: object
    datatype: str | None = None
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class TritonOptions:
    """How prompts and generation parameters map onto a Triton model's inputs and outputs."""

    preset: str = "generic"
    model_version: str | None = None
    text_input: str = "text_input"
    max_tokens: str | None = "max_tokens"
    text_output: str = "text_output"
    stream_flag: str | None = None  # sent as true on streaming requests (TensorRT-LLM, vLLM backend)
    ignore_eos: str | None = "ignore_eos"  # sent as true; "min_length" is sent max_tokens instead
    temperature: str | None = "temperature"
    sampling_parameters: str | None = None  # vLLM backend: max_tokens etc. as one JSON string input
    constants: tuple[tuple[str, object], ...] = ()  # further inputs sent with every request
    inputs: tuple[TensorSpec, ...] = ()  # a full template instead of the fields above
    output: str | None = None  # the output tensor to read (default: text_output)
    output_includes_input: bool = False  # token-id outputs that start with the prompt's ids

    @property
    def output_name(self) -> str:
        return self.output or self.text_output


PRESETS: dict[str, dict[str, object]] = {
    "generic": {},
    "trtllm": {
        "stream_flag": "stream",
        "ignore_eos": "min_length",
        "constants": {"bad_words": "", "stop_words": ""},
    },
    "vllm": {
        "max_tokens": None,
        "ignore_eos": None,
        "temperature": None,
        "stream_flag": "stream",
        "sampling_parameters": "sampling_parameters",
        "constants": {"exclude_input_in_output": True},
    },
    "fastertransformer": {
        "inputs": [
            {"name": "input_ids", "value": "$input_ids"},
            {"name": "input_lengths", "value": "$input_length"},
            {"name": "request_output_len", "value": "$max_tokens"},
        ],
        "output": "output_ids",
        "output_includes_input": True,
    },
}
_FIELD_KEYS = ("model_version", "text_input", "max_tokens", "text_output", "stream_flag", "ignore_eos", "temperature",
               "sampling_parameters", "output")  # fmt: skip


def parse_triton_options(data: dict[str, Any]) -> TritonOptions:
    """The ``triton:`` scenario mapping (or ``--triton``). Raises ValueError naming the key."""
    preset_name = str(data.get("preset", "generic"))
    if preset_name not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {preset_name!r}")
    merged: dict[str, Any] = {**PRESETS[preset_name], **{k: v for k, v in data.items() if k != "preset"}}
    known = {*_FIELD_KEYS, "constants", "inputs", "output_includes_input"}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; expected some of preset, {', '.join(sorted(known))}")
    values: dict[str, Any] = {"preset": preset_name}
    for key in _FIELD_KEYS:
        if key in merged:
            value = merged[key]
            if value is not None and not isinstance(value, (str, int)):
                raise ValueError(f"{key}: expected a name, got {value!r}")
            values[key] = None if value is None else str(value)
    constants = merged.get("constants") or {}
    if not isinstance(constants, dict):
        raise ValueError(f"constants: expected a mapping of input name to value, got {constants!r}")
    values["constants"] = tuple((str(k), v) for k, v in constants.items())
    values["inputs"] = tuple(_tensor_spec(entry, i) for i, entry in enumerate(merged.get("inputs") or []))
    values["output_includes_input"] = bool(merged.get("output_includes_input", False))
    return TritonOptions(**values)


def _tensor_spec(entry: object, index: int) -> TensorSpec:
    where = f"inputs[{index}]"
    if not isinstance(entry, dict) or "name" not in entry or "value" not in entry:
        raise ValueError(f"{where}: expected {{name, value[, datatype, shape]}}, got {entry!r}")
    value = entry["value"]
    if isinstance(value, str) and value.startswith("$") and value not in PLACEHOLDERS:
        raise ValueError(f"{where}.value: unknown placeholder {value!r}; expected one of {', '.join(PLACEHOLDERS)}")
    datatype = entry.get("datatype")
    if datatype is not None and str(datatype).upper() not in DATATYPES:
        raise ValueError(f"{where}.datatype: expected one of {', '.join(DATATYPES)}, got {datatype!r}")
    shape = entry.get("shape")
    if shape is not None and (not isinstance(shape, list) or not all(isinstance(d, int) and d >= -1 for d in shape)):
        raise ValueError(f"{where}.shape: expected a list of dimensions (-1 = the value's length), got {shape!r}")
    return TensorSpec(str(entry["name"]), value, None if datatype is None else str(datatype).upper(),
                      None if shape is None else tuple(shape))  # fmt: skip


@dataclass(frozen=True, slots=True)
class TensorInfo:
    datatype: str
    shape: tuple[int, ...]  # as the metadata gives it: with the batch dimension when max_batch_size > 0
    optional: bool = False


@dataclass(frozen=True, slots=True)
class ModelSignature:
    """A model's inputs and outputs, from ``GET /v2/models/{m}`` (and its ``/config``)."""

    name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    max_batch_size: int = 0
    decoupled: bool = False
    versions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        def tensors(infos: dict[str, TensorInfo]) -> list[dict[str, object]]:
            return [{"name": n, "datatype": t.datatype, "shape": list(t.shape), "optional": t.optional}
                    for n, t in infos.items()]  # fmt: skip

        return {
            "name": self.name, "inputs": tensors(self.inputs), "outputs": tensors(self.outputs),
            "max_batch_size": self.max_batch_size, "decoupled": self.decoupled, "versions": list(self.versions),
        }  # fmt: skip


def parse_signature(metadata: object, config: object = None) -> ModelSignature:
    """KServe v2 model metadata (JSON), with Triton's model config when available. Raises ProtocolError."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get("inputs"), list):
        raise ProtocolError("model metadata has no 'inputs' list")
    optional: set[str] = set()
    max_batch_size = 0
    decoupled = False
    if isinstance(config, dict):
        max_batch_size = int(config.get("max_batch_size") or 0)
        decoupled = bool((config.get("model_transaction_policy") or {}).get("decoupled", False))
        optional = {str(i.get("name")) for i in config.get("input") or [] if isinstance(i, dict) and i.get("optional")}

    def tensors(entries: object) -> dict[str, TensorInfo]:
        result: dict[str, TensorInfo] = {}
        for entry in entries if isinstance(entries, list) else []:
            try:
                name = str(entry["name"])
                result[name] = TensorInfo(str(entry["datatype"]), tuple(int(d) for d in entry["shape"]),
                                          name in optional)  # fmt: skip
            except (KeyError, TypeError, ValueError):
                raise ProtocolError(f"model metadata has a malformed tensor: {entry!r}"[:200]) from None
        return result

    versions = metadata.get("versions") or []
    return ModelSignature(str(metadata.get("name", "")), tensors(metadata["inputs"]), tensors(metadata.get("outputs")),
                          max_batch_size, decoupled, tuple(str(v) for v in versions))  # fmt: skip


def signature_from_json(data: dict[str, Any]) -> ModelSignature:
    def tensors(entries: list[dict[str, Any]]) -> dict[str, TensorInfo]:
        return {e["name"]: TensorInfo(e["datatype"], tuple(e["shape"]), bool(e.get("optional"))) for e in entries}

    return ModelSignature(data["name"], tensors(data["inputs"]), tensors(data["outputs"]), int(data["max_batch_size"]),
                          bool(data["decoupled"]), tuple(data.get("versions", ())))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tensor:
    """An input ready to send: ``values`` flattened, ``len(values) == prod(shape)``."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: list[Any] = field(default_factory=list)


Encode = Callable[[str], list[int]]


def model_path(model: str | None, options: TritonOptions) -> str:
    if not model:
        raise ProtocolError("Triton needs a model name: give --model")
    path = f"/v2/models/{model}"
    return f"{path}/versions/{options.model_version}" if options.model_version else path


class RequestValues:
    """The placeholder values of one request."""

    def __init__(self, prompt: Prompt, params: GenerationParams, stream: bool, encode: Encode | None) -> None:
        self.prompt = prompt
        self.params = params
        self.stream = stream
        self._encode = encode

    def input_ids(self) -> list[int]:
        if self._encode is None:
            raise ProtocolError("the Triton template uses $input_ids: give --tokenizer to turn prompts into token ids")
        return self._encode(self.prompt.as_text())

    def resolve(self, value: object) -> object:
        config = self.params.config
        if not (isinstance(value, str) and value.startswith("$")):
            return value
        if value == "$prompt":
            return self.prompt.as_text()
        if value == "$max_tokens":
            return self.params.max_tokens_for(self.prompt) or 256
        if value == "$input_ids":
            return self.input_ids()
        if value == "$input_length":
            return len(self.input_ids())
        if value == "$ignore_eos":
            return config.ignore_eos
        if value == "$temperature":
            return config.temperature if config.temperature is not None else 0.0
        if value == "$stream":
            return self.stream
        return value


def field_specs(options: TritonOptions, values: RequestValues) -> list[TensorSpec]:
    """The inputs the field options ask for (without datatypes); the template's when it has one."""
    if options.inputs:
        specs = list(options.inputs)
    else:
        config = values.params.config
        specs = [TensorSpec(options.text_input, "$prompt")]
        if options.max_tokens:
            specs.append(TensorSpec(options.max_tokens, "$max_tokens"))
        if options.stream_flag:
            specs.append(TensorSpec(options.stream_flag, "$stream"))
        if config.ignore_eos and options.ignore_eos:
            specs.append(TensorSpec(options.ignore_eos, "$max_tokens" if options.ignore_eos == "min_length" else True))
        if config.temperature is not None and options.temperature:
            specs.append(TensorSpec(options.temperature, "$temperature"))
        if options.sampling_parameters:
            sampling: dict[str, object] = {"max_tokens": values.resolve("$max_tokens")}
            if config.ignore_eos:
                sampling["ignore_eos"] = True
            if config.temperature is not None:
                sampling["temperature"] = config.temperature
            specs.append(TensorSpec(options.sampling_parameters, json.dumps(sampling)))
    named = {spec.name for spec in specs}
    specs += [TensorSpec(name, value) for name, value in options.constants if name not in named]
    return specs


def build_tensors(options: TritonOptions, signature: ModelSignature | None, values: RequestValues,
                  extra: tuple[tuple[str, object], ...] = ()) -> list[Tensor]:  # fmt: skip
    """Input tensors with datatypes and shapes from the template, else from the model's metadata.

    A batch of prompts (``--batch-size``) fills the batch dimension of a model with
    ``max_batch_size > 0``: one row per prompt, the other inputs repeated on every row."""
    specs = field_specs(options, values) + [TensorSpec(name, value) for name, value in extra]
    rows = len(values.prompt.batch) or 1
    batched_model = signature is not None and signature.max_batch_size > 0
    if rows > 1 and not batched_model:
        model = signature.name if signature is not None else "the model"
        raise ProtocolError(f"{model} has max_batch_size 0: it takes one prompt per request (drop --batch-size)")
    tensors = []
    for spec in specs:
        value = values.resolve(spec.value)
        flat: list[Any] = list(value) if isinstance(value, (list, tuple)) else [value]
        if rows > 1:
            if spec.value == "$prompt":
                flat = values.prompt.texts
            elif len(flat) == 1:
                flat = flat * rows
            else:
                raise ProtocolError(f"input {spec.name!r} has {len(flat)} values per prompt: it cannot be batched")
        info = signature.inputs.get(spec.name) if signature is not None else None
        datatype = spec.datatype or (info.datatype if info else _guess_datatype(flat))
        if spec.shape is not None:
            shape = spec.shape
        elif info is not None:
            shape = info.shape
        else:
            shape = (len(flat),)
        shape = _fill_shape(shape, len(flat), rows if batched_model and spec.shape is None else None)
        if math.prod(shape) != len(flat):
            raise ProtocolError(f"input {spec.name!r}: {len(flat)} value(s) do not fill shape {list(shape)}")
        tensors.append(Tensor(spec.name, datatype, shape, [_coerce(v, datatype, spec.name) for v in flat]))
    return tensors


def _fill_shape(shape: tuple[int, ...], count: int, batch_rows: int | None) -> tuple[int, ...]:
    dims = list(shape)
    if batch_rows is not None and dims and dims[0] == -1:
        dims[0] = batch_rows
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        fill = count // known if known else count
        dims = [fill if d == -1 else d for d in dims]
        while -1 in dims:
            dims[dims.index(-1)] = 1
    return tuple(dims)


def _guess_datatype(values: list[object]) -> str:
    first = values[0] if values else ""
    if isinstance(first, bool):
        return "BOOL"
    if isinstance(first, int):
        return "INT32"
    if isinstance(first, float):
        return "FP32"
    return "BYTES"


def _coerce(value: Any, datatype: str, name: str) -> object:
    try:
        if datatype == "BYTES":
            return value if isinstance(value, (str, bytes)) else json.dumps(value)
        if datatype == "BOOL":
            return bool(value)
        if datatype.startswith(("INT", "UINT")):
            return int(value)
        return float(value)
    except (TypeError, ValueError):
        raise ProtocolError(f"input {name!r}: {value!r} is not a {datatype} value") from None


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


class TritonGrpcCodec:
    """KServe v2 over gRPC: ``ModelStreamInfer`` when streaming (decoupled models), else ``ModelInfer``.

    Bodies are serialized ``ModelInferRequest`` messages; the decoder is fed one serialized
    response message per ``feed`` (the gRPC transport frames them)."""

    name = "triton-grpc"

    def __init__(self, options: TritonOptions | None = None, signature: ModelSignature | None = None,
                 encode: Encode | None = None) -> None:  # fmt: skip
        from tritonclient.grpc import service_pb2

        self._pb = service_pb2
        self.options = options or TritonOptions()
        self.signature = signature
        self._encode = encode
        self._sequence = 0

    def build_request(self, prompt: Prompt, params: GenerationParams) -> HttpRequest:
        stream = params.config.stream
        values = RequestValues(prompt, params, stream, self._encode)
        tensors = build_tensors(self.options, self.signature, values, params.config.extra_body)
        if not params.model:
            raise ProtocolError("Triton needs a model name: give --model")
        self._sequence += 1
        request = self._pb.ModelInferRequest(model_name=params.model, model_version=self.options.model_version or "",
                                             id=str(self._sequence))  # fmt: skip
        for tensor in tensors:
            entry = request.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=list(tensor.shape))
            _fill_contents(entry.contents, tensor)
        request.outputs.add(name=self.options.output_name)
        if stream:
            # What tritonclient's sync stream sets; its asyncio client refuses this reserved name.
            request.parameters["triton_enable_empty_final_response"].bool_param = True
        method = GRPC_STREAM if stream else GRPC_UNARY
        return HttpRequest(method, STREAM_METHOD if stream else INFER_METHOD, (), request.SerializeToString())

    def decoder(self, stream: bool, prompt: Prompt | None = None) -> TritonGrpcDecoder:
        input_length = 0
        if self.options.output_includes_input and prompt is not None and self._encode is not None:
            input_length = len(self._encode(prompt.as_text()))
        return TritonGrpcDecoder(self._pb, self.options.output_name, stream, input_length)

    def error_message(self, status: int, body: bytes) -> str:
        return " ".join(body.decode("utf-8", "replace").split())[:300]


def _fill_contents(contents: Any, tensor: Tensor) -> None:
    datatype = tensor.datatype
    if datatype == "BYTES":
        contents.bytes_contents.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in tensor.values)
    elif datatype == "BOOL":
        contents.bool_contents.extend(tensor.values)
    elif datatype in ("INT8", "INT16", "INT32"):
        contents.int_contents.extend(tensor.values)
    elif datatype == "INT64":
        contents.int64_contents.extend(tensor.values)
    elif datatype in ("UINT8", "UINT16", "UINT32"):
        contents.uint_contents.extend(tensor.values)
    elif datatype == "UINT64":
        contents.uint64_contents.extend(tensor.values)
    elif datatype == "FP64":
        contents.fp64_contents.extend(tensor.values)
    else:
        contents.fp32_contents.extend(tensor.values)


_RAW_DTYPES = {"BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1",
               "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}  # fmt: skip


def raw_tensor_values(datatype: str, raw: bytes) -> list[Any]:
    """Triton's ``raw_output_contents``: little-endian arrays; BYTES as 4-byte length + data each."""
    if datatype == "BYTES":
        values: list[Any] = []
        offset = 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise ProtocolError("BYTES tensor cut inside a length prefix")
            length = int.from_bytes(raw[offset : offset + 4], "little")
            offset += 4
            if offset + length > len(raw):
                raise ProtocolError("BYTES tensor element runs past the end of the data")
            values.append(raw[offset : offset + length])
            offset += length
        return values
    import numpy

    dtype = _RAW_DTYPES.get(datatype)
    if dtype is None:
        raise ProtocolError(f"unknown tensor datatype {datatype!r}")
    if len(raw) % numpy.dtype(dtype).itemsize:
        raise ProtocolError(f"{datatype} tensor of {len(raw)} bytes is not whole elements")
    array: list[Any] = numpy.frombuffer(raw, dtype=dtype).tolist()
    return array


def _content_values(datatype: str, contents: Any) -> list[Any]:
    for field_name in ("bytes_contents", "bool_contents", "int_contents", "int64_contents", "uint_contents",
                       "uint64_contents", "fp32_contents", "fp64_contents"):  # fmt: skip
        values = list(getattr(contents, field_name))
        if values:
            return values
    return []


class TritonGrpcDecoder:
    """One serialized response message per ``feed``. Streams end at the response flagged
    ``triton_final_response`` (an empty one when the model sends its last token unflagged)."""

    def __init__(self, pb: Any, output: str, stream: bool, input_length: int) -> None:
        self._pb = pb
        self._output = output
        self._stream = stream
        self._input_length = input_length
        self._complete = False
        self._responses = 0

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._stream:
            message = self._pb.ModelStreamInferResponse()
            _parse(message, data)
            if message.error_message:
                self._complete = True
                return [ServerError(message.error_message), ResponseComplete()]
            response = message.infer_response
        else:
            response = self._pb.ModelInferResponse()
            _parse(response, data)
        self._responses += 1
        events = self._response_events(response)
        final = response.parameters.get("triton_final_response")
        if not self._stream or (final is not None and final.bool_param):
            self._complete = True
            events.append(ResponseComplete())
        return events

    def _response_events(self, response: Any) -> list[StreamEvent]:
        for index, output in enumerate(response.outputs):
            if output.name != self._output:
                continue
            if index < len(response.raw_output_contents):
                values = raw_tensor_values(output.datatype, response.raw_output_contents[index])
            else:
                values = _content_values(output.datatype, output.contents)
            return output_events(output.datatype, values, self._input_length)
        if response.outputs:
            names = ", ".join(o.name for o in response.outputs)
            raise ProtocolError(f"response has no output {self._output!r} (it has: {names})")
        return []  # the empty final response

    def close(self) -> list[StreamEvent]:
        if self._responses == 0 and not self._complete:
            raise ProtocolError("stream ended without a response")
        if self._stream and not self._complete:
            raise ProtocolError("stream ended before the response flagged triton_final_response")
        return []


def _parse(message: Any, data: bytes) -> None:
    from google.protobuf.message import DecodeError

    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"not a valid {type(message).__name__} message: {exc}") from None


def uses_token_ids(options: TritonOptions) -> bool:
    return any(spec.value in ("$input_ids", "$input_length") for spec in options.inputs)


def signature_problems(options: TritonOptions, signature: ModelSignature, api: str, stream: bool) -> list[str]:
    """What stops this model from taking these requests, each as one line (empty: all is well)."""
    model = signature.name or "the model"
    problems: list[str] = []
    inputs = signature.inputs
    names = ", ".join(f"{n} ({t.datatype})" for n, t in inputs.items()) or "none"
    if options.inputs:
        sent = [spec.name for spec in options.inputs]
    else:
        sent = [options.text_input]
        if api != "triton-generate":
            sent += [n for n in (options.max_tokens, options.sampling_parameters) if n]
    sent += [name for name, _ in options.constants]
    for name in sent:
        if name not in inputs:
            problems.append(f"{model} has no input {name!r} (its inputs: {names}); set triton fields or inputs")
    for spec in options.inputs:
        info = inputs.get(spec.name)
        if info is not None and spec.datatype is not None and spec.datatype != info.datatype:
            problems.append(f"input {spec.name!r} of {model} is {info.datatype}, the template says {spec.datatype}")
    if api != "triton-generate":
        missing = [n for n, t in inputs.items() if not t.optional and n not in sent and n != options.stream_flag]
        if missing and signature.inputs:
            problems.append(f"{model} requires input(s) {', '.join(missing)} that the request does not send; "
                            "add them to triton.constants or triton.inputs")  # fmt: skip
    if signature.outputs and options.output_name not in signature.outputs:
        outputs = ", ".join(signature.outputs)
        problems.append(f"{model} has no output {options.output_name!r} (its outputs: {outputs}); set triton.output")
    if signature.decoupled and not stream:
        problems.append(f"{model} is decoupled (it streams its answer): drop --no-stream")
    if api == "triton-infer" and signature.decoupled:
        problems.append(
            f"{model} is decoupled: KServe infer over HTTP cannot take it; use triton-grpc or triton-generate"
        )
    return problems


def metadata_requests(api: str, model: str, version: str | None) -> tuple[HttpRequest, HttpRequest]:
    """The requests for a model's metadata and its config (over gRPC when ``api`` is triton-grpc)."""
    if api != "triton-grpc":
        path = model_path(model, TritonOptions(model_version=version))
        return HttpRequest("GET", path, (), b""), HttpRequest("GET", path + "/config", (), b"")
    from tritonclient.grpc import service_pb2

    metadata = service_pb2.ModelMetadataRequest(name=model, version=version or "")
    config = service_pb2.ModelConfigRequest(name=model, version=version or "")
    service = "/inference.GRPCInferenceService/"
    return (HttpRequest(GRPC_UNARY, service + "ModelMetadata", (), metadata.SerializeToString()),
            HttpRequest(GRPC_UNARY, service + "ModelConfig", (), config.SerializeToString()))  # fmt: skip


def signature_from_replies(api: str, metadata: bytes, config: bytes | None) -> ModelSignature:
    """The replies to ``metadata_requests`` (``config`` None when the server refused it)."""
    if api != "triton-grpc":
        config_json = decode_json(config, "model config") if config else None
        return parse_signature(decode_json(metadata, "model metadata"), config_json)
    from google.protobuf.json_format import MessageToDict
    from tritonclient.grpc import service_pb2

    metadata_reply = service_pb2.ModelMetadataResponse()
    _parse(metadata_reply, metadata)
    config_dict = None
    if config:
        config_reply = service_pb2.ModelConfigResponse()
        _parse(config_reply, config)
        config_dict = MessageToDict(config_reply.config, preserving_proto_field_name=True)
    metadata_dict = MessageToDict(metadata_reply, preserving_proto_field_name=True)
    metadata_dict.setdefault("inputs", [])
    return parse_signature(metadata_dict, config_dict)
