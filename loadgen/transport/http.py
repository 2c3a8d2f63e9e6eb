"""Transport layer: HTTP/1.1 with kernel receive stamps, one keep-alive pool per run.

``HttpTransport`` opens its connections before the measured window (``connect``), reuses them,
and re-sends a request once on a fresh connection when a reused one fails before any byte of
the response came back (a server that closed it while idle, as curl and browsers retry). Each
response carries its send stamp (last byte into the kernel), connect time (when it needed a new
connection) and the largest delay between a byte's arrival and loadgen reading it (read lag).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from collections.abc import AsyncGenerator
from urllib.parse import unquote, urlsplit

from loadgen.clock import Clock, MonotonicClock
from loadgen.errors import ConfigError, ErrorKind
from loadgen.parsing import public_url
from loadgen.protocols.base import HttpRequest
from loadgen.transport.base import BodySink, TransportFailure, TransportReport
from loadgen.transport.batching import ReadBatcher
from loadgen.transport.connection import HttpConnection, enable_receive_stamps
from loadgen.transport.stamps import ArrivalStamper, StampSource, kernel_stamps_available

USER_AGENT = "loadgen"
CONNECT_PARALLELISM = 64


class HttpResponseStream:
    """The response to one request: status and headers are in; the body is read with
    ``deliver`` (the hot path), ``chunks`` or ``read_body``."""

    def __init__(self, connection: HttpConnection, connect_ns: int | None, limits: _Limits) -> None:
        self._connection = connection
        self._serial = connection.requests_sent  # the connection's request this response answers
        self._limits = limits
        self.status = connection.status
        self.headers = connection.response_headers
        self.content_type = self.headers.get("content-type", "")
        self._times = connection.times
        self.sent_ns = connection.times.sent_ns
        self.connect_ns = connect_ns

    @property
    def read_lag_max_ns(self) -> int | None:
        return self._times.read_lag_max_ns

    async def deliver(self, sink: BodySink) -> None:
        """Hands each piece of the body to ``sink`` as it is read, stamped with its arrival;
        returns once ``sink`` returns True or the body ends."""
        try:
            await self._connection.attach(sink)
        except BaseException:
            self._done(drain=False)
            raise
        self._done(drain=True)

    async def chunks(self) -> AsyncGenerator[tuple[int, bytes], None]:
        pieces: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

        def sink(read_ns: int, data: bytes) -> bool:
            pieces.put_nowait((read_ns, data))
            return False

        body = self._connection.attach(sink)
        body.add_done_callback(lambda _: pieces.put_nowait(None))
        drain = False
        try:
            while (piece := await pieces.get()) is not None:
                yield piece
            await body
            drain = True
        finally:
            self._done(drain)

    async def read_body(self, limit_bytes: int) -> bytes:
        pieces: list[bytes] = []
        size = 0

        def sink(read_ns: int, data: bytes) -> bool:
            nonlocal size
            pieces.append(data)
            size += len(data)
            return size >= limit_bytes

        try:
            await self._connection.attach(sink)
        finally:
            self._done(drain=False)  # a body cut at the limit is not worth reading on
        return b"".join(pieces)[:limit_bytes]

    def abort(self) -> None:
        if self._connection.requests_sent == self._serial:
            self._connection.abort()

    def _done(self, drain: bool) -> None:
        """The request is done with its response. A body that the decoder found whole before the
        HTTP message ended (``[DONE]`` before the last chunk marker) is read on, off the request's
        time, and the connection then goes back to the pool; any other unfinished body leaves the
        connection unusable."""
        self._limits.cancel()
        connection = self._connection
        if connection.requests_sent != self._serial or connection.message_done or drain:
            return
        connection.abort()


class HttpTransport:
    """A keep-alive pool for one base URL; TLS verification on unless the user turns it off.

    ``read_timeout_s``: the longest silence allowed while waiting for headers or body bytes;
    ``total_timeout_s``: the longest a request may take from send to its last byte (0: no limit).
    ``kernel_stamps``: take receive times from the kernel where the platform can;
    ``batch_reads``: with kernel stamps, pace the loop while reads come fast (``batching``)."""

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        max_connections: int,
        headers: dict[str, str],
        connect_timeout_s: float,
        read_timeout_s: float,
        total_timeout_s: float,
        verify_tls: bool = True,
        kernel_stamps: bool = True,
        batch_reads: bool = True,
    ) -> None:
        try:
            parts = urlsplit(base_url)
        except ValueError as exc:
            raise ConfigError(f"--endpoint {public_url(base_url)!r}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"--endpoint {public_url(base_url)!r}: expected http://host[:port] or https://host[:port]"
            )
        try:
            port = parts.port
        except ValueError:
            raise ConfigError("--endpoint: the port is not a number from 1 to 65535") from None
        self._tls_context = _tls_context(verify_tls) if parts.scheme == "https" else None
        self._host = parts.hostname
        self._port = port or (443 if self._tls_context else 80)
        self._base_path = parts.path.rstrip("/")
        self._query = parts.query  # e.g. Azure's ?api-version=: sent with every request
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_ns = round(read_timeout_s * 1e9) if read_timeout_s > 0 else None
        self._total_timeout_ns = round(total_timeout_s * 1e9) if total_timeout_s > 0 else None
        self._read_timeout_s, self._total_timeout_s = read_timeout_s, total_timeout_s
        self._headers = _default_headers(self._host, port, parts.username, parts.password, headers)
        self._client_closes = self._headers.get("connection", ("", ""))[1].strip().lower() == "close"
        use_kernel = kernel_stamps and isinstance(clock, MonotonicClock) and kernel_stamps_available()
        self._stamper = ArrivalStamper() if use_kernel else None
        self._batch_reads = batch_reads
        self._batcher: ReadBatcher | None = None
        self._idle: list[HttpConnection] = []
        self._connections: set[HttpConnection] = set()
        self._addresses: list[tuple[int, int, int, tuple[object, ...]]] | None = None
        self._closed = False
        self._load_started = False
        self._connect_times: list[int] = []
        self.connections_opened = 0
        self.connections_before_load = 0
        self.retries = 0
        self.closes_announced = 0

    # --- the pool ----------------------------------------------------------------------------------

    async def connect(self, count: int) -> int:
        """Opens up to ``count`` idle connections before the load (a failure here is left for the
        requests to meet); returns how many are idle now."""
        wanted = min(count, self._max_connections) - len(self._idle)
        gate = asyncio.Semaphore(CONNECT_PARALLELISM)

        async def open_one() -> None:
            async with gate:
                try:
                    connection, _ = await self._open_connection()
                except TransportFailure:
                    return
                self._put_idle(connection)

        await asyncio.gather(*(open_one() for _ in range(max(0, wanted))))
        self.connections_before_load = self.connections_opened
        return len(self._idle)

    def start_load(self) -> None:
        """From now on, new connections count as reconnects."""
        self._load_started = True
        self.connections_before_load = self.connections_opened

    def _put_idle(self, connection: HttpConnection) -> None:
        if self._closed or connection.closed:
            connection.abort()
            self._connections.discard(connection)
            return
        self._idle.append(connection)

    def _released(self, connection: HttpConnection) -> None:
        if self._client_closes or not connection.keeps_alive:  # Connection: close, asked or answered
            self.closes_announced += 1
            connection.abort()
            self._connections.discard(connection)
            return
        self._put_idle(connection)

    async def _acquire(self, fresh: bool = False) -> tuple[HttpConnection, int | None]:
        idle = self._idle
        while idle and not fresh:
            connection = idle.pop()
            if not connection.closed:
                return connection, None
            self._connections.discard(connection)
        return await self._open_connection()

    async def _open_connection(self) -> tuple[HttpConnection, int]:
        started_ns = time.perf_counter_ns()
        try:
            connection = await asyncio.wait_for(self._dial(), self._connect_timeout_s or None)
        except asyncio.TimeoutError:
            raise TransportFailure(
                ErrorKind.CONNECT,
                f"cannot connect: no connection within {self._connect_timeout_s:g}s (--connect-timeout)",
            ) from None
        connect_ns = time.perf_counter_ns() - started_ns
        self._connect_times.append(connect_ns)
        self.connections_opened += 1
        self._connections.add(connection)
        return connection, connect_ns

    async def _dial(self) -> HttpConnection:
        loop = asyncio.get_running_loop()
        if self._addresses is None:
            try:
                infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                raise TransportFailure(
                    ErrorKind.CONNECT, f"cannot connect: cannot resolve {self._host} ({exc})"
                ) from None
            self._addresses = [(family, kind, proto, address) for family, kind, proto, _, address in infos]
        last_error: OSError | None = None
        for family, kind, proto, address in self._addresses:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                last_error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return await self._finish_connection(loop, sock)
        reason = last_error.strerror if last_error is not None and last_error.strerror else str(last_error)
        raise TransportFailure(ErrorKind.CONNECT, f"cannot connect: {self._host}:{self._port}: {reason}")

    async def _finish_connection(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> HttpConnection:
        stamper = self._stamper if self._stamper is not None and enable_receive_stamps(sock) else None
        tls = tls_in = tls_out = None
        if self._tls_context is not None:
            tls_in, tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = self._tls_context.wrap_bio(tls_in, tls_out, server_hostname=self._host)
            try:
                await _handshake(loop, sock, tls, tls_in, tls_out)
            except BaseException:
                sock.close()
                raise
        if stamper is not None and self._batcher is None and self._batch_reads:
            self._batcher = ReadBatcher(loop)
        return HttpConnection(loop, sock, stamper, self._batcher, tls, tls_in, tls_out, self._released)

    # --- requests ----------------------------------------------------------------------------------

    async def open(self, request: HttpRequest) -> HttpResponseStream:
        data = self._serialize(request)
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            # a re-send goes on a new connection: the next idle one may be as dead as the first
            connection, connect_ns = await self._acquire(fresh=attempt > 0)
            limits = _Limits(loop, connection, self._read_timeout_ns, self._total_timeout_ns,
                             self._read_timeout_s, self._total_timeout_s)  # fmt: skip
            try:
                await connection.send(data)
            except TransportFailure as failure:
                limits.cancel()
                fresh = connect_ns is not None
                if (
                    not fresh
                    and attempt == 0
                    and connection.times.first_byte_ns is None
                    and failure.kind is ErrorKind.STREAM_BROKEN
                ):
                    self.retries += 1
                    continue
                raise
            except BaseException:
                limits.cancel()
                connection.abort()
                raise
            if connect_ns is not None and not self._load_started:
                connect_ns = None  # opened by the connect step, before the load
            return HttpResponseStream(connection, connect_ns, limits)
        raise AssertionError("unreachable")

    def _serialize(self, request: HttpRequest) -> bytes:
        headers = dict(self._headers)
        for name, value in request.headers:
            headers[name.lower()] = (name, value)
        body = request.body
        if body or request.method in ("POST", "PUT", "PATCH"):
            headers["content-length"] = ("Content-Length", str(len(body)))
        lines = [f"{request.method} {self._target(request.path)} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.values()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _target(self, path: str) -> str:
        if not self._query:
            return self._base_path + path
        return f"{self._base_path}{path}{'&' if '?' in path else '?'}{self._query}"

    def report(self) -> TransportReport:
        stamper = self._stamper
        return TransportReport(
            stamp_source=(StampSource.KERNEL if stamper is not None else StampSource.USER).value,
            kernel_stamped_reads=stamper.kernel_reads if stamper is not None else 0,
            stamp_anomalies=stamper.anomalies if stamper is not None else 0,
            connections_opened=self.connections_opened,
            connections_before_load=self.connections_before_load,
            retries=self.retries,
            closes_announced=self.closes_announced,
            connect_ns=tuple(self._connect_times),
            read_pauses=self._batcher.pauses if self._batcher is not None else 0,
        )

    async def close(self) -> None:
        self._closed = True
        if self._batcher is not None:
            self._batcher.stop()
        for connection in list(self._connections):
            connection.abort(ErrorKind.CANCELLED, "the transport closed")
        self._connections.clear()
        self._idle.clear()


class _Limits:
    """The read-silence and total limits of one request, on one timer that re-arms itself lazily
    (rescheduling a timer on every read would cost more than the read)."""

    __slots__ = ("_connection", "_handle", "_loop", "_read_ns", "_read_s", "_total_at_ns", "_total_s")

    def __init__(self, loop: asyncio.AbstractEventLoop, connection: HttpConnection, read_ns: int | None,
                 total_ns: int | None, read_s: float, total_s: float) -> None:  # fmt: skip
        self._loop, self._connection = loop, connection
        self._read_ns, self._read_s, self._total_s = read_ns, read_s, total_s
        now_ns = time.perf_counter_ns()
        self._total_at_ns = now_ns + total_ns if total_ns is not None else None
        self._handle: asyncio.TimerHandle | None = None
        self._arm(now_ns, now_ns)

    def _arm(self, now_ns: int, last_read_ns: int) -> None:
        due = [deadline for deadline in (
            last_read_ns + self._read_ns if self._read_ns is not None else None, self._total_at_ns,
        ) if deadline is not None]  # fmt: skip
        if due:
            self._handle = self._loop.call_later(max(0, min(due) - now_ns) / 1e9, self._check)

    def _check(self) -> None:
        now_ns = time.perf_counter_ns()
        connection = self._connection
        if connection.closed:
            return
        if self._total_at_ns is not None and now_ns >= self._total_at_ns:
            connection.abort(
                ErrorKind.TIMEOUT, f"timed out: the request took over {self._total_s:g}s (--request-timeout)"
            )
        elif self._read_ns is not None and now_ns - connection.last_read_ns >= self._read_ns:
            waiting = "the response headers" if connection.times.first_byte_ns is None else "more of the response"
            connection.abort(ErrorKind.TIMEOUT, f"timed out: no bytes for {self._read_s:g}s waiting for {waiting} "
                                                "(--first-token-timeout)")  # fmt: skip
        else:
            self._arm(now_ns, connection.last_read_ns)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


async def _handshake(loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: ssl.SSLObject,
                     incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> None:  # fmt: skip
    while True:
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        except ssl.SSLError as exc:
            raise TransportFailure(
                ErrorKind.CONNECT, f"cannot connect: TLS handshake failed ({exc.reason or exc})"
            ) from None
        pending = outgoing.read()
        if pending:
            await loop.sock_sendall(sock, pending)
        if done:
            return
        data = await loop.sock_recv(sock, 65536)
        if not data:
            raise TransportFailure(
                ErrorKind.CONNECT, "cannot connect: the server closed the connection during the TLS handshake"
            )
        incoming.write(data)


def _tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _default_headers(host: str, port: int | None, username: str | None, password: str | None,
                     extra: dict[str, str]) -> dict[str, tuple[str, str]]:  # fmt: skip
    """Lower-case name → (name as sent, value). Credentials in the URL become Basic auth."""
    host_value = f"[{host}]" if ":" in host else host
    if port is not None:
        host_value += f":{port}"
    headers = {
        "host": ("Host", host_value),
        "user-agent": ("User-Agent", USER_AGENT),
        "accept": ("Accept", "*/*"),
        "accept-encoding": ("Accept-Encoding", "gzip, deflate"),
    }
    if username is not None:
        token = base64.b64encode(f"{unquote(username)}:{unquote(password or '')}".encode()).decode()
        headers["authorization"] = ("Authorization", f"Basic {token}")
    for name, value in extra.items():
        if any(ch in name or ch in value for ch in "\r\n\0") or not name or any(ch in name for ch in " :"):
            raise ConfigError(f"--header {name!r}: a header name or value cannot hold a line break or NUL "
                              "(and a name no space or colon)")  # fmt: skip
        headers[name.lower()] = (name, value)
    return headers
