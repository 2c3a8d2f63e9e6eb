"""Transport layer: gRPC (grpc.aio) for serialized messages the codecs build.

The codec gives the full method name as ``path`` and a serialized request as ``body``; method
``GRPC_STREAM`` opens a bidirectional stream, sends the one request and half-closes, and each
response message is yielded whole, stamped on arrival; ``GRPC_UNARY`` makes a unary call. Calls
are multiplexed over a few shared HTTP/2 channels, one per ``STREAMS_PER_CHANNEL`` concurrent
streams (servers commonly allow 100 streams per connection).

gRPC status codes map to HTTP-like statuses for unary calls (so the engine's error path and
preflight treat them alike) and to ``TransportFailure`` kinds for streams.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.aio

from loadgen.clock import Clock
from loadgen.errors import ConfigError, ErrorKind
from loadgen.protocols.base import GRPC_STREAM, GRPC_UNARY, HttpRequest
from loadgen.transport.base import BodySink, TransportFailure, TransportReport, deliver_chunks
from loadgen.transport.stamps import StampSource

STREAMS_PER_CHANNEL = 100
DEFAULT_MESSAGE_LIMIT_BYTES = 256 * 1024 * 1024
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


def grpc_target(url: str) -> tuple[str, bool]:
    """``grpc://host:port`` (or ``grpcs://``, or a bare ``host:port``) → (target, TLS)."""
    parts = urlsplit(url if "://" in url else f"grpc://{url}")
    if parts.scheme not in ("grpc", "grpcs", "http", "https") or not parts.hostname:
        raise ConfigError(f"--endpoint {url!r}: expected grpc://HOST:PORT for a gRPC API")
    tls = parts.scheme in ("grpcs", "https")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or (443 if tls else 8001)}", tls


def _failure_kind(code: grpc.StatusCode) -> ErrorKind:
    if code is grpc.StatusCode.UNAVAILABLE:
        return ErrorKind.CONNECT
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return ErrorKind.TIMEOUT
    if code is grpc.StatusCode.CANCELLED:
        return ErrorKind.STREAM_BROKEN
    status = _HTTP_STATUS.get(code)
    if status is not None:
        return ErrorKind.from_http_status(status)
    return ErrorKind.SERVER_ERROR


def _over_limit(error: grpc.aio.AioRpcError) -> bool:
    """gRPC refused a reply larger than the channel's receive limit (its own words, no code of its own)."""
    return error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in (error.details() or "")


def _describe(error: grpc.aio.AioRpcError) -> str:
    details = " ".join((error.details() or "").split())  # shortened after redaction, by the engine
    return f"gRPC {error.code().name}: {details}"


class GrpcResponseStream:
    """A gRPC call's replies, stamped in user space when grpc.aio hands them over (grpc owns its
    sockets, so no kernel stamps here)."""

    content_type = "application/grpc"
    headers: dict[str, str] = {}  # noqa: RUF012 - never written: gRPC metadata is not HTTP headers here
    sent_ns: int | None = None
    connect_ns: int | None = None
    read_lag_max_ns: int | None = None

    def __init__(self, call: object, clock: Clock, status: int = 200, unary_reply: tuple[int, bytes] | None = None,
                 error_body: bytes = b"") -> None:  # fmt: skip
        self._call: Any = call  # a grpc.aio call: grpc's stubs type it loosely
        self._clock = clock
        self.status = status
        self._unary_reply = unary_reply  # (arrival stamp, message)
        self._error_body = error_body
        self._aborted = False

    async def chunks(self) -> AsyncGenerator[tuple[int, bytes], None]:
        if self._unary_reply is not None:
            yield self._unary_reply
            return
        call = self._call
        now_ns = self._clock.now_ns
        try:
            async for message in call:
                yield now_ns(), message
        except asyncio.CancelledError:
            if not self._aborted:
                raise
            raise TransportFailure(ErrorKind.STREAM_BROKEN, "stream closed by the client") from None
        except grpc.aio.AioRpcError as error:
            if self._aborted:
                raise TransportFailure(ErrorKind.STREAM_BROKEN, "stream closed by the client") from None
            if _over_limit(error):
                raise TransportFailure(ErrorKind.PROTOCOL_ERROR, _describe(error)) from None
            raise TransportFailure(_failure_kind(error.code()), _describe(error)) from None
        finally:
            call.cancel()  # a no-op once the call has ended

    async def deliver(self, sink: BodySink) -> None:
        await deliver_chunks(self.chunks(), sink)

    async def read_body(self, limit_bytes: int) -> bytes:
        return self._error_body[:limit_bytes]

    def abort(self) -> None:
        self._aborted = True
        if self._call is not None:
            self._call.cancel()


class GrpcTransport:
    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        max_streams: int,
        headers: dict[str, str],
        total_timeout_s: float,
        first_response_timeout_s: float | None = None,
        max_message_bytes: int = DEFAULT_MESSAGE_LIMIT_BYTES,
    ) -> None:
        """``first_response_timeout_s``: the deadline of a unary call, whose one reply is its first
        token too (default: ``total_timeout_s``); streams are watched by the engine instead.
        ``max_message_bytes``: the largest reply message taken (a larger one fails its request as
        a protocol error before gRPC holds it whole)."""
        self._target, self._tls = grpc_target(url)
        self._clock = clock
        self._metadata = tuple((name.lower(), value) for name, value in headers.items())
        self._channel_count = max(1, math.ceil(max_streams / STREAMS_PER_CHANNEL))
        self._timeout_s = total_timeout_s
        self._unary_timeout_s = min(total_timeout_s, first_response_timeout_s or total_timeout_s)
        self._options = [("grpc.max_receive_message_length", max_message_bytes),
                         ("grpc.max_send_message_length", -1)]  # fmt: skip
        self._channels: list[grpc.aio.Channel] = []
        self._next = itertools.cycle(range(self._channel_count))

    def _channel(self) -> grpc.aio.Channel:
        if not self._channels:
            for index in range(self._channel_count):
                # a distinct option per channel keeps gRPC from sharing one connection among them
                options = [*self._options, ("loadgen.channel", index)]
                if self._tls:
                    channel = grpc.aio.secure_channel(self._target, grpc.ssl_channel_credentials(), options=options)
                else:
                    channel = grpc.aio.insecure_channel(self._target, options=options)
                self._channels.append(channel)
        return self._channels[next(self._next)]

    async def open(self, request: HttpRequest) -> GrpcResponseStream:
        channel = self._channel()
        metadata = self._metadata or None
        if request.method == GRPC_STREAM:
            method = channel.stream_stream(request.path)
            call = method(iter((request.body,)), timeout=self._timeout_s, metadata=metadata)
            return GrpcResponseStream(call, self._clock)
        if request.method != GRPC_UNARY:
            raise TransportFailure(ErrorKind.PROTOCOL_ERROR, f"gRPC transport cannot send a {request.method} request")
        unary = channel.unary_unary(request.path)
        try:
            reply = await unary(request.body, timeout=self._unary_timeout_s, metadata=metadata)
            arrived_ns = self._clock.now_ns()
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise TransportFailure(_failure_kind(code), _describe(error)) from None
            if _over_limit(error):
                raise TransportFailure(ErrorKind.PROTOCOL_ERROR, _describe(error)) from None
            status = _HTTP_STATUS.get(code, 500)
            return GrpcResponseStream(None, self._clock, status, error_body=_describe(error).encode())
        return GrpcResponseStream(None, self._clock, unary_reply=(arrived_ns, reply))

    async def connect(self, count: int) -> int:
        """Channels connect on their first call; nothing to open ahead here."""
        return 0

    def start_load(self) -> None:
        return None

    def report(self) -> TransportReport:
        return TransportReport(stamp_source=StampSource.USER.value)

    async def close(self) -> None:
        channels, self._channels = self._channels, []
        await asyncio.gather(*(channel.close() for channel in channels), return_exceptions=True)
