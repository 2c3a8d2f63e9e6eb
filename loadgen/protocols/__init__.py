"""Protocols layer: pure codecs, one module per API, and the one registry of them.

Adding an API is one module and one line in ``CODECS``.
"""

from __future__ import annotations

from collections.abc import Callable

from loadgen.errors import ConfigError
from loadgen.protocols.base import Codec, GenerationParams, HttpRequest
from loadgen.protocols.openai import OpenAICodec
from loadgen.protocols.tgi import TgiCodec

CODECS: dict[str, Callable[[], Codec]] = {
    "openai-chat": lambda: OpenAICodec(chat=True),
    "openai-completions": lambda: OpenAICodec(chat=False),
    "tgi": TgiCodec,
}


def get_codec(api: str) -> Codec:
    try:
        return CODECS[api]()
    except KeyError:
        raise ConfigError(f"--api: unknown API {api!r}; expected one of {', '.join(CODECS)}") from None


__all__ = ["CODECS", "Codec", "GenerationParams", "HttpRequest", "get_codec"]
