"""Shared bottom layer: optional tokenizers for counting tokens the server did not report.

``--tokenizer path/to/tokenizer.json`` uses Hugging Face ``tokenizers``; ``--tokenizer
tiktoken:cl100k_base`` uses ``tiktoken`` (whose encodings are fetched on first use unless cached).
Both are optional dependencies (``pip install 'loadgen[tokenizers]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loadgen.errors import ConfigError


class TokenCounter:
    def __init__(
        self,
        name: str,
        count: Callable[[str], int],
        encode: Callable[[str], list[int]] | None = None,
        decode: Callable[[list[int]], str] | None = None,
    ) -> None:
        self.name = name
        self._count = count
        self.encode = encode  # text → token ids, for servers that take ids (FasterTransformer on Triton)
        self.decode = decode  # token ids → text, to cut synthetic prompts at an exact token count

    def count(self, text: str) -> int:
        return self._count(text) if text else 0


def load_token_counter(spec: str) -> TokenCounter:
    if spec.startswith("tiktoken:"):
        encoding_name = spec.removeprefix("tiktoken:")
        try:
            import tiktoken
        except ImportError:
            raise ConfigError(f"--tokenizer {spec}: needs tiktoken (pip install 'loadgen[tokenizers]')") from None
        try:
            encoding = tiktoken.get_encoding(encoding_name)
        except Exception as exc:
            raise ConfigError(f"--tokenizer {spec}: cannot load encoding: {exc}") from None

        def encode_tiktoken(text: str) -> list[int]:
            return list(encoding.encode(text, disallowed_special=()))

        return TokenCounter(spec, lambda text: len(encode_tiktoken(text)), encode_tiktoken, encoding.decode)
    path = Path(spec)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"--tokenizer {spec}: no such tokenizer.json file (or use tiktoken:ENCODING)")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError(f"--tokenizer {spec}: needs tokenizers (pip install 'loadgen[tokenizers]')") from None
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ConfigError(f"--tokenizer {spec}: not a valid tokenizer.json: {exc}") from None

    def encode_hf(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False).ids)

    def decode_hf(ids: list[int]) -> str:
        return str(tokenizer.decode(ids, skip_special_tokens=True))

    return TokenCounter(str(path), lambda text: len(encode_hf(text)), encode_hf, decode_hf)
