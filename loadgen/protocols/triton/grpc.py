"""Triton protocol over gRPC: KServe v2 ``ModelStreamInfer`` (decoupled models) and
``ModelInfer``, as serialized protobuf messages."""

from __future__ import annotations

from typing import Any

from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.protocols.base import (
    GRPC_STREAM,
    GRPC_UNARY,
    GenerationParams,
    HttpRequest,
    ResponseComplete,
    ServerError,
    StreamEvent,
)
from loadgen.protocols.triton.http import output_events
from loadgen.protocols.triton.options import TritonOptions
from loadgen.protocols.triton.signature import ModelSignature, parse_message
from loadgen.protocols.triton.tensors import Encode, RequestValues, Tensor, build_tensors

STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"


INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


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
        return " ".join(body.decode("utf-8", "replace").split())  # shortened after redaction, by the engine


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
            parse_message(message, data)
            if message.error_message:
                self._complete = True
                return [ServerError(message.error_message), ResponseComplete()]
            response = message.infer_response
        else:
            response = self._pb.ModelInferResponse()
            parse_message(response, data)
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
