"""Transport layer: the interface the engine drives, and the one failure type it raises.

Library errors (aiohttp, later grpc/botocore) are mapped to ``TransportFailure`` with an
``ErrorKind`` at this boundary, so nothing above sees a library exception.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

from loadgen.errors import ErrorKind
from loadgen.protocols.base import HttpRequest


class TransportFailure(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ResponseStream(Protocol):
    status: int
    content_type: str

    def chunks(self) -> AsyncGenerator[tuple[int, bytes], None]:
        """Body bytes as they arrive, each stamped with the clock on arrival, before decoding."""
        ...

    async def read_body(self, limit_bytes: int) -> bytes: ...

    def abort(self) -> None:
        """Close the connection now (used for first-token timeouts)."""
        ...


class Transport(Protocol):
    async def open(self, request: HttpRequest) -> ResponseStream:
        """Send the request and wait for the status line and headers."""
        ...

    async def close(self) -> None: ...
