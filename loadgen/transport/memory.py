"""Transport layer: an in-memory twin of the HTTP transport, for tests and dry runs.

A handler maps each request to a ``ScriptedResponse``: status, and body pieces each preceded by
a delay. Pieces are stamped with the transport's clock as they are "received", exactly as the
HTTP transport does, so engine and metrics code run unchanged on known timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from loadgen.clock import Clock, FakeClock
from loadgen.errors import ErrorKind
from loadgen.protocols.base import HttpRequest
from loadgen.transport.base import BodySink, TransportFailure, TransportReport, deliver_chunks
from loadgen.transport.stamps import StampSource


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    status: int = 200
    pieces: tuple[tuple[float, bytes], ...] = ()  # (delay before the piece in seconds, bytes)
    content_type: str = "text/event-stream"
    break_after: int | None = None  # raise stream_broken after this many pieces
    headers_delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()  # names in lower case


@dataclass
class MemoryTransport:
    handler: Callable[[HttpRequest], ScriptedResponse | TransportFailure]
    clock: Clock
    requests: list[HttpRequest] = field(default_factory=list)

    async def _wait(self, delay_s: float) -> None:
        if isinstance(self.clock, FakeClock):
            await asyncio.sleep(0)
            self.clock.advance(round(delay_s * 1e9))
        elif delay_s > 0:
            await asyncio.sleep(delay_s)
        else:
            await asyncio.sleep(0)

    async def open(self, request: HttpRequest) -> MemoryResponseStream:
        self.requests.append(request)
        scripted = self.handler(request)
        if isinstance(scripted, TransportFailure):
            await self._wait(0)
            raise scripted
        await self._wait(scripted.headers_delay_s)
        return MemoryResponseStream(self, scripted)

    async def connect(self, count: int) -> int:
        return count

    def start_load(self) -> None:
        return None

    def report(self) -> TransportReport:
        return TransportReport(stamp_source=StampSource.USER.value)

    async def close(self) -> None:
        return None


class MemoryResponseStream:
    sent_ns: int | None = None
    connect_ns: int | None = None
    read_lag_max_ns: int | None = None

    def __init__(self, transport: MemoryTransport, scripted: ScriptedResponse) -> None:
        self._transport = transport
        self._scripted = scripted
        self.status = scripted.status
        self.content_type = scripted.content_type
        self.headers = dict(scripted.headers)
        self._aborted = False

    async def chunks(self) -> AsyncGenerator[tuple[int, bytes], None]:
        for number, (delay_s, data) in enumerate(self._scripted.pieces):
            if self._scripted.break_after is not None and number >= self._scripted.break_after:
                raise TransportFailure(ErrorKind.STREAM_BROKEN, "stream broken: connection reset by peer")
            await self._transport._wait(delay_s)
            if self._aborted:
                raise TransportFailure(ErrorKind.STREAM_BROKEN, "stream broken: connection closed")
            yield self._transport.clock.now_ns(), data

    async def deliver(self, sink: BodySink) -> None:
        await deliver_chunks(self.chunks(), sink)

    async def read_body(self, limit_bytes: int) -> bytes:
        return b"".join(data for _, data in self._scripted.pieces)[:limit_bytes]

    def abort(self) -> None:
        self._aborted = True
