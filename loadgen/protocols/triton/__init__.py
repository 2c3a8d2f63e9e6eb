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

from loadgen.protocols.triton.grpc import (
    INFER_METHOD,
    STREAM_METHOD,
    TritonGrpcCodec,
    TritonGrpcDecoder,
    raw_tensor_values,
)
from loadgen.protocols.triton.http import (
    TritonGenerateCodec,
    TritonGenerateStreamDecoder,
    TritonInferCodec,
    output_events,
)
from loadgen.protocols.triton.options import (
    DATATYPES,
    PLACEHOLDERS,
    PRESETS,
    TensorSpec,
    TritonOptions,
    model_path,
    parse_triton_options,
    uses_token_ids,
)
from loadgen.protocols.triton.signature import (
    ModelSignature,
    TensorInfo,
    metadata_requests,
    parse_signature,
    signature_from_json,
    signature_from_replies,
    signature_problems,
)
from loadgen.protocols.triton.tensors import Encode, RequestValues, Tensor, build_tensors, field_specs

__all__ = [
    "DATATYPES",
    "INFER_METHOD",
    "PLACEHOLDERS",
    "PRESETS",
    "STREAM_METHOD",
    "Encode",
    "ModelSignature",
    "RequestValues",
    "Tensor",
    "TensorInfo",
    "TensorSpec",
    "TritonGenerateCodec",
    "TritonGenerateStreamDecoder",
    "TritonGrpcCodec",
    "TritonGrpcDecoder",
    "TritonInferCodec",
    "TritonOptions",
    "build_tensors",
    "field_specs",
    "metadata_requests",
    "model_path",
    "output_events",
    "parse_signature",
    "parse_triton_options",
    "raw_tensor_values",
    "signature_from_json",
    "signature_from_replies",
    "signature_problems",
    "uses_token_ids",
]
