"""Protocols layer: pure codecs, one module per API, and the one registry of them.

Adding an API is one module and one line in ``CODECS``.
"""

from __future__ import annotations

from collections.abc import Callable

from loadgen.config import EndpointConfig
from loadgen.errors import ConfigError
from loadgen.parsing import did_you_mean
from loadgen.prompts import Prompt
from loadgen.protocols.apis import API_SPECS, BATCH_APIS, TRITON_APIS, api_spec
from loadgen.protocols.base import Codec, Decoder, GenerationParams, HttpRequest
from loadgen.protocols.lmi import LmiCodec
from loadgen.protocols.openai import OpenAICodec
from loadgen.protocols.sagemaker import SageMakerCodec, SageMakerTarget
from loadgen.protocols.tgi import TgiCodec
from loadgen.protocols.triton import (
    Encode,
    ModelSignature,
    TritonGenerateCodec,
    TritonGrpcCodec,
    TritonInferCodec,
    TritonOptions,
    parse_triton_options,
    signature_from_json,
)

CODECS: dict[str, Callable[[], Codec]] = {
    "openai-chat": lambda: OpenAICodec(chat=True),
    "openai-completions": lambda: OpenAICodec(chat=False),
    "tgi": TgiCodec,
    "lmi": LmiCodec,
    "triton-generate": TritonGenerateCodec,
    "triton-infer": TritonInferCodec,
    "triton-grpc": TritonGrpcCodec,
}
SCHEMAS = ("lmi", "tgi", "openai-chat")
APIS = tuple(API_SPECS)


class InvocationsCodec:
    """A schema sent to a model container's ``POST /invocations`` (a local LMI/DJL container)."""

    def __init__(self, schema: Codec) -> None:
        self.schema = schema
        self.name = f"lmi-local+{schema.name}"

    def build_request(self, prompt: Prompt, params: GenerationParams) -> HttpRequest:
        inner = self.schema.build_request(prompt, params)
        return HttpRequest(inner.method, "/invocations", inner.headers, inner.body)

    def decoder(self, stream: bool, prompt: Prompt | None = None) -> Decoder:
        return self.schema.decoder(stream, prompt)

    def error_message(self, status: int, body: bytes) -> str:
        return self.schema.error_message(status, body)


def build_codec(
    api: str,
    schema: str | None = None,
    target: SageMakerTarget | None = None,
    triton: TritonOptions | None = None,
    signature: ModelSignature | None = None,
    encode: Encode | None = None,
) -> Codec:
    """The codec for ``--api``; Triton's take their field options, the model's signature (fetched
    before the run) and, for token-id inputs, the tokenizer's ``encode``."""
    if api == "triton-generate":
        return TritonGenerateCodec(triton)
    if api == "triton-infer":
        return TritonInferCodec(triton, signature, encode)
    if api == "triton-grpc":
        return TritonGrpcCodec(triton, signature, encode)
    if api == "sagemaker":
        if target is None:
            raise ConfigError("--api sagemaker: give --endpoint-name")
        return SageMakerCodec(get_codec(schema or "lmi"), target)
    if api == "lmi-local":
        return InvocationsCodec(get_codec(schema or "lmi"))
    return get_codec(api)


def endpoint_codec(endpoint: EndpointConfig, encode: Encode | None = None) -> Codec:
    """The codec an endpoint's configuration asks for (SageMaker target, Triton options and model)."""
    target = None
    if endpoint.sagemaker_endpoint:
        target = SageMakerTarget(endpoint.sagemaker_endpoint, endpoint.inference_component,
                                 endpoint.custom_attributes, endpoint.target_variant)  # fmt: skip
    triton = parse_triton_options(endpoint.triton or {}) if api_spec(endpoint.api).triton else None
    signature = signature_from_json(endpoint.triton_model) if endpoint.triton_model else None
    return build_codec(endpoint.api, endpoint.schema, target, triton, signature, encode)


def get_codec(api: str) -> Codec:
    try:
        return CODECS[api]()
    except KeyError:
        raise ConfigError(
            f"--api: unknown API {api!r}{did_you_mean(api, CODECS)}; expected one of {', '.join(CODECS)}"
        ) from None


__all__ = [
    "APIS",
    "BATCH_APIS",
    "CODECS",
    "SCHEMAS",
    "TRITON_APIS",
    "Codec",
    "GenerationParams",
    "HttpRequest",
    "build_codec",
    "get_codec",
]
