"""Protocols layer: pure codecs, one module per API, and the one registry of them.

Adding an API is one module and one line in ``CODECS``.
"""

from __future__ import annotations

from collections.abc import Callable

from loadgen.errors import ConfigError
from loadgen.prompts import Prompt
from loadgen.protocols.base import Codec, Decoder, GenerationParams, HttpRequest
from loadgen.protocols.lmi import LmiCodec
from loadgen.protocols.openai import OpenAICodec
from loadgen.protocols.sagemaker import SageMakerCodec, SageMakerTarget
from loadgen.protocols.tgi import TgiCodec

CODECS: dict[str, Callable[[], Codec]] = {
    "openai-chat": lambda: OpenAICodec(chat=True),
    "openai-completions": lambda: OpenAICodec(chat=False),
    "tgi": TgiCodec,
    "lmi": LmiCodec,
}
SCHEMAS = ("lmi", "tgi", "openai-chat")
APIS = (*CODECS, "sagemaker", "lmi-local")


class InvocationsCodec:
    """A schema sent to a model container's ``POST /invocations`` (a local LMI/DJL container)."""

    def __init__(self, schema: Codec) -> None:
        self.schema = schema
        self.name = f"lmi-local+{schema.name}"

    def build_request(self, prompt: Prompt, params: GenerationParams) -> HttpRequest:
        inner = self.schema.build_request(prompt, params)
        return HttpRequest(inner.method, "/invocations", inner.headers, inner.body)

    def decoder(self, stream: bool) -> Decoder:
        return self.schema.decoder(stream)

    def error_message(self, status: int, body: bytes) -> str:
        return self.schema.error_message(status, body)


def build_codec(api: str, schema: str | None = None, target: SageMakerTarget | None = None) -> Codec:
    if api == "sagemaker":
        if target is None:
            raise ConfigError("--api sagemaker: give --endpoint-name")
        return SageMakerCodec(get_codec(schema or "lmi"), target)
    if api == "lmi-local":
        return InvocationsCodec(get_codec(schema or "lmi"))
    return get_codec(api)


def get_codec(api: str) -> Codec:
    try:
        return CODECS[api]()
    except KeyError:
        raise ConfigError(f"--api: unknown API {api!r}; expected one of {', '.join(CODECS)}") from None


__all__ = ["APIS", "CODECS", "SCHEMAS", "Codec", "GenerationParams", "HttpRequest", "build_codec", "get_codec"]
