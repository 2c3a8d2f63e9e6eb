"""Transport layer: the interface the engine drives, and the one failure type it raises.

Library errors (sockets, TLS, grpc, botocore) are mapped to ``TransportFailure`` with an
``ErrorKind`` at this boundary, so nothing above sees a library exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from loadgen.errors import ErrorKind
from loadgen.protocols.base import HttpRequest

BodySink = Callable[[int, bytes], bool]
"""Takes (arrival time in ns, body bytes); returns True once the response is whole."""


class TransportFailure(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class ResponseStream(Protocol):
    status: int
    content_type: str
    sent_ns: int | None  # when the request was handed to the kernel: its first write began (None: not known)
    connect_ns: int | None  # time spent opening a connection for this request (None: reused)

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers, names in lower case."""
        ...

    @property
    def read_lag_max_ns(self) -> int | None:
        """The longest delay between a byte's arrival and loadgen reading it (None: not known)."""
        ...

    async def deliver(self, sink: BodySink) -> None:
        """Feeds body pieces to ``sink`` as they arrive, each stamped with its arrival time, until
        ``sink`` returns True or the body ends (the engine's hot path)."""
        ...

    def chunks(self) -> AsyncGenerator[tuple[int, bytes], None]:
        """Body bytes as they arrive, each stamped on arrival, before decoding."""
        ...

    async def read_body(self, limit_bytes: int) -> bytes: ...

    def abort(self) -> None:
        """Close the connection now (used for first-token timeouts)."""
        ...


@dataclass(frozen=True, slots=True)
class TransportReport:
    """How a transport stamped and connected, for ``summary.json``."""

    stamp_source: str
    kernel_stamped_reads: int = 0
    stamp_anomalies: int = 0
    connections_opened: int = 0
    connections_before_load: int = 0
    retries: int = 0  # re-sent once on a fresh connection: a reused one failed before any response byte
    closes_announced: int = 0  # responses that said Connection: close (the client may have asked)
    connect_ns: tuple[int, ...] | None = None  # each connection's connect time; None: not measured
    read_pauses: int = 0  # loop pauses taken to batch reads (transport.batching)

    @property
    def reconnects(self) -> int:
        """Connections opened while the load ran (after the connect step)."""
        return self.connections_opened - self.connections_before_load


class Transport(Protocol):
    async def open(self, request: HttpRequest) -> ResponseStream:
        """Send the request and wait for the status line and headers."""
        ...

    async def connect(self, count: int) -> int:
        """Open up to ``count`` connections before the load; returns how many are ready."""
        ...

    def start_load(self) -> None:
        """The measured load starts: connections opened from now on are reconnects."""
        ...

    def report(self) -> TransportReport: ...

    async def close(self) -> None: ...


async def deliver_chunks(chunks: AsyncGenerator[tuple[int, bytes], None], sink: BodySink) -> None:
    """``ResponseStream.deliver`` for a transport whose reads come as an async generator."""
    async with contextlib.aclosing(chunks) as stream:
        async for arrival_ns, data in stream:
            if sink(arrival_ns, data):
                return
