"""Secrets out of every text loadgen shows or writes."""

from __future__ import annotations

import logging
from collections.abc import Callable


def redactor(secrets: tuple[str, ...]) -> Callable[[str], str]:
    secrets = tuple(secret for secret in secrets if len(secret) >= 4)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return redact


class RedactingFilter(logging.Filter):
    """Secrets out of log records (a library's DEBUG line may hold a URL with ``?key=``)."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._redact(logging.Formatter().formatException(record.exc_info))
        return True


def redact_logs(redact: Callable[[str], str]) -> None:
    """Puts the filter on every handler configured so far (filters on loggers would miss records
    that reach a handler from a child logger)."""
    loggers = [logging.getLogger(), *(logger for logger in logging.root.manager.loggerDict.values()
                                      if isinstance(logger, logging.Logger))]  # fmt: skip
    handlers = {handler for logger in loggers for handler in logger.handlers}
    for handler in handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter(redact))
