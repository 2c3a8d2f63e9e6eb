"""Secrets out of every text loadgen shows or writes."""

from __future__ import annotations

from collections.abc import Callable


def redactor(secrets: tuple[str, ...]) -> Callable[[str], str]:
    secrets = tuple(secret for secret in secrets if len(secret) >= 4)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return redact
