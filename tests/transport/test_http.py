"""The kernel-stamped HTTP transport against scripted servers on real sockets (127.0.0.1).

Each server is a plain socket in a thread that writes exact bytes at exact times, so the tests
know when every byte was sent and can hold the transport's stamps against that."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loadgen.clock import MonotonicClock
from loadgen.errors import ConfigError, ErrorKind
from loadgen.protocols.base import HttpRequest
from loadgen.transport.base import TransportFailure
from loadgen.transport.http import HttpTransport
from loadgen.transport.stamps import StampSource, kernel_stamps_available
from tests.threaded_server import accepting

MS = 1_000_000
REQUEST = HttpRequest("POST", "/v1/completions", (("Content-Type", "application/json"),), b'{"prompt":"hi"}')
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

Script = Callable[[socket.socket, list[int]], None]  # (connection, server's send times in ns)


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return b""
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


@contextmanager
def scripted_server(script: Script, tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, list[int], list[int]]]:
    """Yields (base URL, send times, connection count); each accepted connection runs ``script``."""
    sent: list[int] = []

    def handle(conn: socket.socket) -> None:
        try:
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            with conn:
                script(conn, sent)
        except OSError:  # ssl.SSLError too: a client that refused the certificate
            conn.close()

    with accepting(handle, "https" if tls else "http") as (url, connections):
        yield url, sent, connections


def transport(url: str, **options: object) -> HttpTransport:
    settings: dict[str, object] = {"max_connections": 4, "headers": {}, "connect_timeout_s": 5.0,
                                   "read_timeout_s": 5.0, "total_timeout_s": 30.0, "verify_tls": False}  # fmt: skip
    settings.update(options)
    return HttpTransport(url, MonotonicClock(), **settings)  # type: ignore[arg-type]


async def read_pieces(http: HttpTransport, block_loop_s: float = 0.0) -> tuple[list[tuple[int, bytes]], object]:
    response = await http.open(REQUEST)
    if block_loop_s:
        time.sleep(block_loop_s)  # the event loop is stuck: the bytes wait in the kernel
    pieces: list[tuple[int, bytes]] = []

    def sink(arrival_ns: int, data: bytes) -> bool:
        pieces.append((arrival_ns, data))
        return False

    await response.deliver(sink)
    return pieces, response


@pytest.mark.skipif(not kernel_stamps_available(), reason="this platform has no SO_TIMESTAMPNS")
def test_a_late_read_keeps_the_kernel_arrival_time() -> None:
    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(CHUNKED_HEAD)
        time.sleep(0.02)
        sent.append(time.perf_counter_ns())
        conn.sendall(chunk(b"data: one\n\n"))
        time.sleep(0.3)
        sent.append(time.perf_counter_ns())
        conn.sendall(chunk(b"data: two\n\n") + b"0\r\n\r\n")

    with scripted_server(script) as (url, sent, _):
        http = transport(url)

        async def run() -> tuple[list[tuple[int, bytes]], object, int]:
            pieces, response = await read_pieces(http, block_loop_s=0.15)
            await http.close()
            return pieces, response, 0

        pieces, response, _ = asyncio.run(run())
    assert [data for _, data in pieces] == [b"data: one\n\n", b"data: two\n\n"]
    # read 150 ms after it arrived, the first chunk is still stamped at its arrival: well within
    # half of that of its send, however busy the machine (a read-time stamp would be 150 ms late)
    assert abs(pieces[0][0] - sent[0]) < 75 * MS
    assert abs(pieces[1][0] - sent[1]) < 75 * MS
    assert response.read_lag_max_ns is not None and response.read_lag_max_ns > 100 * MS  # type: ignore[attr-defined]
    report = http.report()
    assert report.stamp_source == StampSource.KERNEL.value and report.kernel_stamped_reads >= 2


def test_without_kernel_stamps_the_read_time_is_used_and_said() -> None:
    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(CHUNKED_HEAD)
        time.sleep(0.02)
        sent.append(time.perf_counter_ns())
        conn.sendall(chunk(b"data: one\n\n") + b"0\r\n\r\n")

    with scripted_server(script) as (url, sent, _):
        http = transport(url, kernel_stamps=False)

        async def run() -> list[tuple[int, bytes]]:
            response = await http.open(REQUEST)
            time.sleep(0.1)
            pieces: list[tuple[int, bytes]] = []
            await response.deliver(lambda t, d: pieces.append((t, d)) is not None)
            await http.close()
            return pieces

        pieces = asyncio.run(run())
    assert http.report().stamp_source == StampSource.USER.value
    assert pieces[0][0] - sent[0] >= 60 * MS  # stamped when the late loop read it


def test_keep_alive_reuses_the_connection_and_the_send_stamp_is_after_the_write() -> None:
    def script(conn: socket.socket, sent: list[int]) -> None:
        while read_request(conn):
            sent.append(time.perf_counter_ns())
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with scripted_server(script) as (url, _, connections):
        http = transport(url)

        async def run() -> list[bytes]:
            bodies = []
            for _ in range(3):
                before = time.perf_counter_ns()
                response = await http.open(REQUEST)
                assert response.sent_ns is not None and before <= response.sent_ns
                bodies.append(await response.read_body(100))
            await http.close()
            return bodies

        assert asyncio.run(run()) == [b"ok"] * 3
    assert connections[0] == 1 and http.report().connections_opened == 1


def test_a_server_that_closes_after_each_stream_gets_the_request_again_on_a_fresh_connection() -> None:
    """llama-server closes the socket after each streamed response while saying keep-alive."""

    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n" + CHUNKED_HEAD[17:] + chunk(b"data: x\n\n")
                     + b"0\r\n\r\n")  # fmt: skip
        conn.shutdown(socket.SHUT_RDWR)

    with scripted_server(script) as (url, _, connections):
        http = transport(url)

        async def run() -> list[list[bytes]]:
            results = []
            for _ in range(3):
                pieces, _ = await read_pieces(http)
                results.append([data for _, data in pieces])
                await asyncio.sleep(0)  # a closed idle connection may or may not be seen before reuse
            await http.close()
            return results

        assert asyncio.run(run()) == [[b"data: x\n\n"]] * 3
    report = http.report()
    assert connections[0] == 3
    assert report.connections_opened == 3


def test_retry_happens_once_and_only_before_any_response_byte() -> None:
    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        read_request(conn)  # the second request is read, then the connection dies unanswered
        conn.shutdown(socket.SHUT_RDWR)

    with scripted_server(script) as (url, _, connections):
        http = transport(url)

        async def run() -> tuple[bytes, bytes]:
            first = await (await http.open(REQUEST)).read_body(10)
            second = await (await http.open(REQUEST)).read_body(10)  # reused, dies, re-sent fresh
            await http.close()
            return first, second

        assert asyncio.run(run()) == (b"ok", b"ok")
    assert http.report().retries == 1 and connections[0] == 2


def test_the_retry_goes_on_a_new_connection_not_on_another_idle_one() -> None:
    """llama-server under load: every idle connection may be as dead as the first (before, the
    re-send took the next idle one, met end-of-stream again, and failed as stream_broken)."""
    lock = threading.Lock()
    served = [0]

    def script(conn: socket.socket, sent: list[int]) -> None:
        with lock:
            served[0] += 1
            number = served[0]
        read_request(conn)
        if number <= 3:  # the connections opened ahead of the load: dead by the time they are used
            conn.shutdown(socket.SHUT_RDWR)
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with scripted_server(script) as (url, _, connections):
        http = transport(url)

        async def run() -> bytes:
            assert await http.connect(3) == 3
            body = await (await http.open(REQUEST)).read_body(10)
            await http.close()
            return body

        assert asyncio.run(run()) == b"ok"
    assert http.report().retries == 1 and connections[0] == 4


def test_bodies_by_length_by_chunks_until_close_and_gzip() -> None:
    compressed = gzip.compress(b"data: zipped\n\n")
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        CHUNKED_HEAD + chunk(b"he") + chunk(b"llo") + b"0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(compressed), compressed),
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    ]

    def script(conn: socket.socket, sent: list[int]) -> None:
        for reply in replies:
            if not read_request(conn):
                return
            conn.sendall(reply)
        conn.shutdown(socket.SHUT_RDWR)

    with scripted_server(script) as (url, _, _):
        http = transport(url)

        async def run() -> list[bytes]:
            bodies = []
            for _ in replies:
                pieces, _ = await read_pieces(http)
                bodies.append(b"".join(data for _, data in pieces))
            await http.close()
            return bodies

        assert asyncio.run(run()) == [b"hello", b"hello", b"data: zipped\n\n", b"ok", b"until the end"]


def test_silence_and_total_limits_say_which_limit_fired() -> None:
    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(CHUNKED_HEAD)
        for _ in range(40):
            time.sleep(0.05)
            conn.sendall(chunk(b"data: x\n\n"))

    with scripted_server(script) as (url, _, _):

        async def fail(**limits: float) -> TransportFailure:
            http = transport(url, **limits)
            try:
                with pytest.raises(TransportFailure) as caught:
                    await read_pieces(http)
            finally:
                await http.close()
            return caught.value

        silence = asyncio.run(fail(read_timeout_s=0.02))
        total = asyncio.run(fail(read_timeout_s=5.0, total_timeout_s=0.3))
    assert silence.kind is ErrorKind.TIMEOUT and "no bytes for 0.02s" in silence.message
    assert total.kind is ErrorKind.TIMEOUT and "took over 0.3s" in total.message


def test_broken_streams_and_refused_connections_are_failures_of_their_kind() -> None:
    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(CHUNKED_HEAD + b"zz\r\nnot a chunk")

    with scripted_server(script) as (url, _, _):

        async def broken() -> TransportFailure:
            http = transport(url)
            with pytest.raises(TransportFailure) as caught:
                await read_pieces(http)
            await http.close()
            return caught.value

        failure = asyncio.run(broken())
    assert failure.kind is ErrorKind.STREAM_BROKEN and "invalid HTTP" in failure.message
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]

    async def refused() -> TransportFailure:
        http = transport(f"http://127.0.0.1:{closed_port}")
        with pytest.raises(TransportFailure) as caught:
            await http.open(REQUEST)
        await http.close()
        return caught.value

    assert asyncio.run(refused()).kind is ErrorKind.CONNECT


def test_bad_endpoints_and_headers_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="line break"):
        transport("http://127.0.0.1:1", headers={"X-Key": "a\r\nInjected: 1"})
    with pytest.raises(ConfigError, match="port"):
        transport("http://127.0.0.1:99999")
    with pytest.raises(ConfigError, match="expected http"):
        transport("ftp://host")
    with pytest.raises(ConfigError, match="IPv6") as caught:
        transport("http://user:SECRET@[::1")
    assert "SECRET" not in str(caught.value)


@pytest.fixture(scope="module")
def tls_server_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    directory: Path = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_tls_session_tickets_on_an_idle_connection_keep_it(tls_server_context: ssl.SSLContext) -> None:
    """A TLS 1.3 server sends its session tickets after the handshake, while the connection opened
    ahead of the load is idle: they are TLS's own records, and the connection stays in the pool."""
    assert tls_server_context.num_tickets > 0 and tls_server_context.maximum_version is ssl.TLSVersion.MAXIMUM_SUPPORTED

    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(CHUNKED_HEAD + chunk(b"data: x\n\n") + b"0\r\n\r\n")

    with scripted_server(script, tls=tls_server_context) as (url, _, connections):
        http = transport(url)

        async def run() -> list[tuple[int, bytes]]:
            assert await http.connect(1) == 1
            await asyncio.sleep(0.3)  # the tickets arrive now, on the idle connection
            http.start_load()
            pieces, _ = await read_pieces(http)
            await http.close()
            return pieces

        pieces = asyncio.run(run())
    assert b"".join(data for _, data in pieces) == b"data: x\n\n"
    report = http.report()
    assert connections[0] == 1 and report.connections_opened == report.connections_before_load == 1  # no reconnect


@pytest.mark.skipif(not kernel_stamps_available(), reason="this platform has no SO_TIMESTAMPNS")
def test_tls_through_memory_bios_keeps_kernel_stamps(tls_server_context: ssl.SSLContext) -> None:
    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(CHUNKED_HEAD)
        sent.append(time.perf_counter_ns())
        conn.sendall(chunk(b"data: secret\n\n") + b"0\r\n\r\n")

    with scripted_server(script, tls=tls_server_context) as (url, sent, _):
        http = transport(url)

        async def run() -> list[tuple[int, bytes]]:
            pieces, _ = await read_pieces(http, block_loop_s=0.1)
            await http.close()
            return pieces

        pieces = asyncio.run(run())
    assert b"".join(data for _, data in pieces) == b"data: secret\n\n"
    assert abs(pieces[0][0] - sent[0]) < 50 * MS  # the loop was blocked 100 ms: stamped at arrival, not read
    with scripted_server(script, tls=tls_server_context) as (url, _, _):
        strict = transport(url, verify_tls=True)

        async def refused() -> TransportFailure:
            with pytest.raises(TransportFailure) as caught:
                await strict.open(REQUEST)
            await strict.close()
            return caught.value

        failure = asyncio.run(refused())
    assert failure.kind is ErrorKind.CONNECT and "TLS" in failure.message


@pytest.mark.parametrize("with_the_end", [True, False], ids=["message-end-in-the-read", "message-end-later"])
def test_a_decoders_error_mid_body_is_its_own_not_invalid_http(with_the_end: bool) -> None:
    """The decoder's error (a protocol error, a body over its limit) must reach the request as
    itself, not as a broken stream: raised inside httptools' callback (the read holds the message
    end, and the body goes to the sink there), which httptools wraps in a callback error, or after
    the read is parsed."""
    from loadgen.errors import ProtocolError

    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(CHUNKED_HEAD)
        time.sleep(0.3)  # the body comes once the request reads it
        conn.sendall(chunk(b"data: {not json\n\n") + (b"0\r\n\r\n" if with_the_end else b""))
        if not with_the_end:
            time.sleep(0.3)
            conn.sendall(b"0\r\n\r\n")

    def sink(arrival_ns: int, data: bytes) -> bool:
        raise ProtocolError("the decoder refused this chunk")

    async def read() -> None:
        http = transport(url)
        try:
            response = await http.open(REQUEST)
            await response.deliver(sink)
        finally:
            await http.close()

    with scripted_server(script) as (url, _, _), pytest.raises(ProtocolError, match="decoder refused"):
        asyncio.run(read())


def test_the_chunks_of_one_read_go_to_the_sink_at_once() -> None:
    """Three HTTP chunks written in one segment are one read: the sink gets their bodies in one call,
    stamped once (the decoder then frames the read's events in one pass)."""

    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(CHUNKED_HEAD)
        time.sleep(0.3)  # after the request has attached its sink
        conn.sendall(chunk(b"data: a\n\n") + chunk(b"data: b\n\n") + chunk(b"data: c\n\n"))
        time.sleep(0.1)
        conn.sendall(b"0\r\n\r\n")

    with scripted_server(script) as (url, _, _):
        http = transport(url)

        async def run() -> list[tuple[int, bytes]]:
            pieces, _ = await read_pieces(http)
            await http.close()
            return pieces

        pieces = asyncio.run(run())
    assert [data for _, data in pieces] == [b"data: a\n\ndata: b\n\ndata: c\n\n"]


def test_the_body_before_invalid_http_in_the_same_read_still_reaches_the_sink() -> None:
    def script(conn: socket.socket, sent: list[int]) -> None:
        read_request(conn)
        conn.sendall(CHUNKED_HEAD)
        time.sleep(0.3)
        conn.sendall(chunk(b"data: one\n\n") + b"zz\r\nnot a chunk")

    pieces: list[bytes] = []

    def sink(arrival_ns: int, data: bytes) -> bool:
        pieces.append(data)
        return False

    with scripted_server(script) as (url, _, _):

        async def read() -> TransportFailure:
            http = transport(url)
            try:
                response = await http.open(REQUEST)
                with pytest.raises(TransportFailure) as caught:
                    await response.deliver(sink)
            finally:
                await http.close()
            return caught.value

        failure = asyncio.run(read())
    assert failure.kind is ErrorKind.STREAM_BROKEN and "invalid HTTP" in failure.message
    assert pieces == [b"data: one\n\n"]
