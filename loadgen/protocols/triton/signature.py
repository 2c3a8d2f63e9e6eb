"""Triton protocol: a model's own inputs and outputs (``ModelSignature``) from its metadata and
config, and what in the options does not fit them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadgen.errors import ProtocolError
from loadgen.protocols.base import (
    GRPC_UNARY,
    HttpRequest,
    decode_json,
)
from loadgen.protocols.triton.options import TritonOptions, model_path


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
    parse_message(metadata_reply, metadata)
    config_dict = None
    if config:
        config_reply = service_pb2.ModelConfigResponse()
        parse_message(config_reply, config)
        config_dict = MessageToDict(config_reply.config, preserving_proto_field_name=True)
    metadata_dict = MessageToDict(metadata_reply, preserving_proto_field_name=True)
    metadata_dict.setdefault("inputs", [])
    return parse_signature(metadata_dict, config_dict)


def parse_message(message: Any, data: bytes) -> None:
    from google.protobuf.message import DecodeError

    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"not a valid {type(message).__name__} message: {exc}") from None
