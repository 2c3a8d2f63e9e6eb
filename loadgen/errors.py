"""Shared bottom layer: the one error tree of loadgen.

    LoadgenError                 anything loadgen reports as a one-line message
    ├── ConfigError              bad flag, scenario key, prompt file or profile
    ├── EndpointError            preflight found the endpoint unusable (unreachable, auth, model)
    ├── ProtocolError            a response that does not follow the API's wire format
    └── OutputError              a result file could not be written (full disk, no permission)

Failures of single requests during a run are *not* exceptions that escape: they become an
``ErrorKind`` on the request record and are counted.
"""

from __future__ import annotations

import enum


class LoadgenError(Exception):
    """An error with a message fit to show the user as one line."""


class ConfigError(LoadgenError):
    """Bad user input: names the file/flag, the field, the value and what was expected."""


class EndpointError(LoadgenError):
    """The endpoint cannot be load-tested as configured (found during preflight)."""


class ProtocolError(LoadgenError):
    """The server's bytes do not follow the API's format."""


class OutputError(LoadgenError):
    """A result file could not be written; the message names the file and the reason."""


class ErrorKind(str, enum.Enum):
    """Why a request failed; each kind is counted separately in the summary."""

    CONNECT = "connect"
    TIMEOUT = "timeout"
    REDIRECT = "redirect"  # a 3xx: not followed, a load generator measures the URL it was given
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    STREAM_BROKEN = "stream_broken"
    PROTOCOL_ERROR = "protocol_error"
    SERVER_ERROR = "server_error"
    CANCELLED = "cancelled"

    @classmethod
    def from_http_status(cls, status: int) -> ErrorKind:
        return cls.HTTP_5XX if status >= 500 else cls.HTTP_4XX
