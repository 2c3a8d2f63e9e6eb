"""Transport layer: one HTTP/1.1 keep-alive connection, read by the event loop's reader callback.

Why not aiohttp here: a load generator must know *when* bytes arrived, not when a task got to run.
This connection reads a non-blocking socket with ``recvmsg`` straight from the loop's reader
callback, takes each read's kernel arrival stamp (``stamps.ArrivalStamper``), parses HTTP with
llhttp (``httptools``, as uvicorn does) and hands the body to the request's sink in the same
callback: no task switch, queue or copy between the socket and the decoder. TLS runs through
``ssl.MemoryBIO``/``SSLObject``, so ciphertext is read (and stamped) the same way.

The send stamp is taken when the request's last byte has entered the kernel (``send`` returned
it all), not before connecting or writing.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import zlib
from collections.abc import Callable

import httptools

from loadgen.errors import ErrorKind
from loadgen.transport.base import BodySink, TransportFailure
from loadgen.transport.batching import ReadBatcher
from loadgen.transport.stamps import CONTROL_BUFFER_BYTES, SO_TIMESTAMPNS, ArrivalStamper

READ_BUFFER_BYTES = 256 * 1024
# one buffer for every read of the process: a fresh 256 KiB allocation per read costs more than
# the read itself (measured: ~12 µs of system time per read)
_READ_BUFFER = memoryview(bytearray(READ_BUFFER_BYTES))
_now_ns = time.perf_counter_ns
DRAIN_LIMIT_S = 0.05  # after the decoder saw the response end, how long to wait for the HTTP message end
DECOMPRESS_PIECE_BYTES = 1 << 20
# the status line and headers of one response, at most (nginx's large buffers hold 32 KiB, Go's
# server 1 MiB); llhttp itself sets no bound, and an endless header would grow until the timeout
HEADER_LIMIT_BYTES = 256 * 1024


class HttpConnection:
    """A connected socket that carries one request at a time.

    ``send`` writes a request and resolves when the status line and headers are in; the body then
    goes to the sink given to ``attach`` (pieces that came before it are kept and replayed). A
    connection goes back to its pool through ``on_release`` once a response has been read to its end;
    ``keeps_alive`` then says whether the response allowed keep-alive."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        stamper: ArrivalStamper | None,
        batcher: ReadBatcher | None,
        tls: ssl.SSLObject | None,
        tls_in: ssl.MemoryBIO | None,
        tls_out: ssl.MemoryBIO | None,
        on_release: Callable[[HttpConnection], None],
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._stamper = stamper
        self._batcher = batcher
        self._tls, self._tls_in, self._tls_out = tls, tls_in, tls_out
        self._on_release = on_release
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.requests_sent = 0
        self._reset()
        loop.add_reader(self._fd, self._on_readable)

    def _reset(self) -> None:
        self._busy = False
        self._read_ns = 0
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._headers_future: asyncio.Future[None] | None = None
        self._body_future: asyncio.Future[None] | None = None
        self._sink: BodySink | None = None
        self._pending: list[tuple[int, bytes]] = []
        self._read_body: list[bytes] = []  # the body pieces of the read being parsed
        self._sink_done = False
        self._drain_timer: asyncio.TimerHandle | None = None
        self._message_done = False
        self._keep_alive = False
        self._encoding = ""
        self._last_read_ns = 0
        self.status = 0
        self.times = ExchangeTimes()

    # --- sending ----------------------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """Writes the request and waits for the response headers; raises ``TransportFailure``."""
        self._reset()
        self._busy = True
        self.requests_sent += 1
        loop = self._loop
        self._headers_future = loop.create_future()
        self._body_future = loop.create_future()
        data = self._tls_wrap(data) if self._tls is not None else data
        # stamped before the write: on loopback the kernel may run the server inside send() before
        # this process is scheduled again, and its answer must not seem to precede the request
        self.times.sent_ns = time.perf_counter_ns()
        await self._write(data)
        self._last_read_ns = time.perf_counter_ns()
        await self._headers_future

    async def _write(self, data: bytes) -> None:
        """Sends it all, waiting for the socket to take more when its buffer is full."""
        view = memoryview(data)
        while True:
            try:
                view = view[self._sock.send(view) :]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                raise self._close_with(
                    ErrorKind.STREAM_BROKEN, f"connection failed: cannot write the request ({_os_reason(exc)})"
                ) from None
            if not view:
                return
            writable: asyncio.Future[None] = self._loop.create_future()
            self._loop.add_writer(self._fd, _resolve, writable)
            try:
                await writable
            finally:
                if not self.closed:
                    self._loop.remove_writer(self._fd)

    def _tls_wrap(self, data: bytes) -> bytes:
        assert self._tls is not None and self._tls_out is not None
        self._tls.write(data)
        return self._tls_out.read()

    # --- reading: called by the event loop ------------------------------------------------------

    def _on_readable(self) -> None:
        buffer = _READ_BUFFER  # shared: each read is parsed, and its body copied out, before the next
        try:
            size, ancillary, _, _ = self._sock.recvmsg_into((buffer,), CONTROL_BUFFER_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(ErrorKind.STREAM_BROKEN, f"stream broken: {_os_reason(exc)}")
            return
        read_ns = _now_ns()
        if not size:
            self._on_eof()
            return
        data: bytes | memoryview = buffer[:size]
        stamper = self._stamper
        arrival_ns = stamper.stamp(ancillary, read_ns) if stamper is not None else read_ns
        batcher = self._batcher
        if batcher is not None:
            batcher.reads += 1
        if not self._busy:
            # a TLS 1.3 server sends its session tickets after the handshake, whenever they arrive:
            # TLS records of its own, not bytes for us; anything else cannot be matched to a request
            if self._tls is None or self._tls_unwrap(data):
                self._close_quietly()
            return
        lag = read_ns - arrival_ns
        times = self.times
        lag_max = times.read_lag_max_ns
        if lag_max is None:
            times.read_lag_max_ns = lag
            times.first_byte_ns = arrival_ns
        elif lag > lag_max:
            times.read_lag_max_ns = lag
        self._read_ns = arrival_ns
        self._last_read_ns = read_ns
        if self._tls is not None:
            data = self._tls_unwrap(data)
            if not data:
                return
        headers_future = self._headers_future
        in_headers = headers_future is not None and not headers_future.done()
        if in_headers:
            self._header_bytes += len(data)
        try:
            self._parser.feed_data(data)
            self._deliver_read()
        except httptools.HttpParserUpgrade:
            self._fail(ErrorKind.PROTOCOL_ERROR, "the server switched protocols")
        except _SinkFailed as failed:
            self._fail_with(failed.error)
        except httptools.HttpParserError as exc:
            # httptools may wrap what a callback raised (the decoder's own error) in a callback error:
            # that is the decoder's failure, counted as its kind, not as invalid HTTP
            wrapped = exc.__cause__ or exc.__context__
            if isinstance(wrapped, _SinkFailed):
                self._fail_with(wrapped.error)
                return
            try:  # the body before the invalid bytes is the request's, as if each piece had gone on at once
                self._deliver_read()
            except _SinkFailed as failed:
                self._fail_with(failed.error)
                return
            self._fail(ErrorKind.STREAM_BROKEN, f"stream broken: invalid HTTP from the server ({exc})")
            return
        if in_headers and self._header_bytes > HEADER_LIMIT_BYTES and headers_future and not headers_future.done():
            self._fail(ErrorKind.PROTOCOL_ERROR, f"the response's headers ran over {HEADER_LIMIT_BYTES // 1024} KiB "
                                                 "(a server bug or a hostile server)")  # fmt: skip

    def _tls_unwrap(self, data: bytes | memoryview) -> bytes:
        assert self._tls is not None and self._tls_in is not None
        self._tls_in.write(data)
        pieces = []
        while True:
            try:
                piece = self._tls.read(READ_BUFFER_BYTES)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError as exc:
                self._fail(ErrorKind.STREAM_BROKEN, f"stream broken: TLS error ({exc.reason or exc})")
                return b""
            if not piece:  # close_notify
                break
            pieces.append(piece)
        return b"".join(pieces)

    def _on_eof(self) -> None:
        if not self._busy:
            self._close_quietly()
            return
        if self._headers_future is not None and self._headers_future.done() and self._reads_until_close():
            self._loop.remove_reader(self._fd)
            self.on_message_complete()  # the body ran to the end of the connection
            return
        where = "before the response" if self.times.first_byte_ns is None else "mid-response"
        self._fail(ErrorKind.STREAM_BROKEN, f"stream broken: server closed the connection {where}")

    def _reads_until_close(self) -> bool:
        return "content-length" not in self._headers and "chunked" not in self._headers.get("transfer-encoding", "")

    # --- httptools callbacks -----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._encoding = self._headers.get("content-encoding", "").strip().lower()
        if self.status < 200:  # 1xx: an interim response; the real one follows on the same parser
            self._headers = {}
            self._header_bytes = 0
            return
        future = self._headers_future
        if future is not None and not future.done():
            future.set_result(None)

    def on_body(self, body: bytes) -> None:
        """Called by httptools for each piece of the body (each HTTP chunk): kept until the read is
        parsed, then the read's body goes to the sink at once (``_deliver_read``). The pieces of one
        read share its arrival stamp, and the decoder then frames all of its events in one pass."""
        self._read_body.append(body)

    def _deliver_read(self) -> None:
        """The body of the read just parsed, to the sink (a compressed body is inflated by the sink
        wrapper that ``attach`` puts in front of the request's sink)."""
        pieces = self._read_body
        if not pieces:
            return
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        sink = self._sink
        if sink is None:
            self._pending.append((self._read_ns, body))
            return
        if self._sink_done:
            return
        try:
            done = sink(self._read_ns, body)
        except Exception as exc:  # the decoder's error belongs to the request, raised in its task
            raise _SinkFailed(exc) from None
        if done:
            self._sink_finished()

    def on_message_complete(self) -> None:
        if self.status < 200:
            return
        self._deliver_read()  # the sink has the whole body before the connection is handed back
        self._message_done = True
        self._keep_alive = self._parser.should_keep_alive()
        if self._sink is not None:
            self._hand_over()

    def _hand_over(self) -> None:
        """The message ended and its sink has it all: the request is done with the connection."""
        self._sink_done = True
        self._resolve_body()
        self._release()

    def _release(self) -> None:
        """The response was read to its end and handed over: the connection is free again."""
        self._busy = False
        self._on_release(self)

    @property
    def keeps_alive(self) -> bool:
        """The last response allowed the connection to carry another request."""
        return self._keep_alive

    # --- the body, for the request's task -----------------------------------------------------------

    def attach(self, sink: BodySink) -> asyncio.Future[None]:
        """Feeds the body to ``sink`` from now on (and what came before); the future resolves when
        the sink says the response is whole or the body ends, and fails with ``TransportFailure``
        or the sink's own exception."""
        assert self._body_future is not None
        if self._encoding in ("gzip", "x-gzip", "deflate"):
            sink = _Inflating(sink, self._encoding)
        self._sink = sink
        pending, self._pending = self._pending, []
        for read_ns, body in pending:
            if self._sink_done:
                break
            try:
                if sink(read_ns, body):
                    self._sink_finished()
            except Exception as exc:
                self._fail_with(exc)
                break
        if self._message_done and not self.closed:
            self._hand_over()
        return self._body_future

    def _sink_finished(self) -> None:
        """The decoder has the whole response. The HTTP message usually ends in the same read; if
        not, the connection waits a little for its end (to be reused) and is closed after that."""
        self._sink_done = True
        if not self._message_done and self._drain_timer is None:
            self._drain_timer = self._loop.call_later(DRAIN_LIMIT_S, self._stop_draining)

    def _stop_draining(self) -> None:
        self._drain_timer = None
        self._resolve_body()
        self._close_quietly()

    def _resolve_body(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        future = self._body_future
        if future is not None and not future.done():
            future.set_result(None)

    @property
    def response_headers(self) -> dict[str, str]:
        return self._headers

    @property
    def last_read_ns(self) -> int:
        return self._last_read_ns

    @property
    def message_done(self) -> bool:
        return self._message_done

    # --- failure and closing ------------------------------------------------------------------------

    def _fail(self, kind: ErrorKind, message: str) -> None:
        self._fail_with(TransportFailure(kind, message))

    def _fail_with(self, error: BaseException) -> None:
        self._close_quietly()
        if self._sink_done:  # the decoder already had the whole response: nothing is lost
            self._resolve_body()
        for future in (self._headers_future, self._body_future):
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()  # retrieved here: the request may be waiting on only one of them

    def _close_with(self, kind: ErrorKind, message: str) -> TransportFailure:
        self._close_quietly()
        return TransportFailure(kind, message)

    def abort(
        self, kind: ErrorKind = ErrorKind.STREAM_BROKEN, message: str = "stream broken: connection closed"
    ) -> None:
        """Closes now; whatever the request waits on fails with ``kind``."""
        if self._busy:
            self._fail(kind, message)
        else:
            self._close_quietly()

    def _close_quietly(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        self._busy = False
        loop = self._loop
        loop.remove_reader(self._fd)
        loop.remove_writer(self._fd)
        self._sock.close()


class _Inflating:
    """A sink in front of the request's: inflates a gzip or deflate body piece by piece, at most
    ``DECOMPRESS_PIECE_BYTES`` at a time (a compression bomb meets the decoder's caps, not memory)."""

    __slots__ = ("_inflater", "_sink")

    def __init__(self, sink: BodySink, encoding: str) -> None:
        self._sink = sink
        self._inflater = zlib.decompressobj(zlib.MAX_WBITS if encoding == "deflate" else 16 + zlib.MAX_WBITS)

    def __call__(self, arrival_ns: int, body: bytes) -> bool:
        inflater = self._inflater
        try:
            piece = inflater.decompress(body, DECOMPRESS_PIECE_BYTES)
            while piece:
                if self._sink(arrival_ns, piece):
                    return True
                piece = inflater.decompress(inflater.unconsumed_tail, DECOMPRESS_PIECE_BYTES)
        except zlib.error as exc:
            raise TransportFailure(ErrorKind.STREAM_BROKEN, f"stream broken: bad compressed body ({exc})") from None
        return False


class ExchangeTimes:
    """The transport's own times of one request on a connection: a new one per request, so a
    response keeps its figures after the connection has gone on to the next request."""

    __slots__ = ("first_byte_ns", "read_lag_max_ns", "sent_ns")

    def __init__(self) -> None:
        self.sent_ns: int | None = None  # the request was handed to the kernel (its first write began)
        self.first_byte_ns: int | None = None  # arrival of the response's first bytes
        self.read_lag_max_ns: int | None = None  # longest arrival-to-read delay of its reads


class _SinkFailed(Exception):
    """Carries an exception out of httptools' callbacks to the read that fed them."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def enable_receive_stamps(sock: socket.socket) -> bool:
    if SO_TIMESTAMPNS is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True
