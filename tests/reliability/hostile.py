"""The hostile server: one raw-socket HTTP/1.1 server with a mode per misbehaviour, recording what it
was sent (request lines and headers) so that tests assert facts the server saw.

Every mode answers ``GET /v1/models`` (model ``m``) and ``GET /metrics`` as a plain server would;
what it does with a generation request is the mode's. Bytes written are bounded: a hostile mode
stops after ``HOSTILE_LIMIT_BYTES`` or when the client hangs up.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.threaded_server import accepting

HOSTILE_LIMIT_BYTES = 8 << 20
FRAMES = [{"choices": [{"index": 0, "text": word, "finish_reason": None}]} for word in (" a", " b")] + [
    {"choices": [{"index": 0, "text": " c", "finish_reason": "length"}]},
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}},
]
STREAM_BODY = b"".join(b"data: " + json.dumps(frame).encode() + b"\n\n" for frame in FRAMES) + b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Seen:
    line: str  # "POST /v1/completions?api-version=1 HTTP/1.1"
    headers: dict[str, str]  # lower-case names

    @property
    def target(self) -> str:
        return self.line.split(" ")[1]


@dataclass
class Hostile:
    url: str
    seen: list[Seen] = field(default_factory=list)
    accepted: list[int] = field(default_factory=lambda: [0])  # connections accepted so far
    redirect_to: str = ""  # mode "redirect": where generation requests are sent

    def generation_requests(self) -> list[Seen]:
        return [seen for seen in self.seen if seen.line.startswith("POST")]


Mode = Callable[[socket.socket, Seen, Hostile, int], bool]  # → keep the connection open


def _read_request(conn: socket.socket, buffered: bytearray) -> Seen | None:
    while b"\r\n\r\n" not in buffered:
        piece = conn.recv(65536)
        if not piece:
            return None
        buffered += piece
    head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        piece = conn.recv(65536)
        if not piece:
            return None
        rest += piece
    buffered[:] = rest[length:]
    return Seen(lines[0], headers)


def _reply(conn: socket.socket, status: str, body: bytes, content_type: str, extra: str = "") -> None:
    conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                 f"{extra}\r\n".encode() + body)  # fmt: skip


def stream(conn: socket.socket, seen: Seen, server: Hostile, number: int) -> bool:
    """A well-behaved server: the whole answer, keep-alive."""
    _reply(conn, "200 OK", STREAM_BODY, "text/event-stream")
    return True


def answer_and_close(conn: socket.socket, seen: Seen, server: Hostile, number: int) -> bool:
    """Answers, then closes, as the client's ``Connection: close`` asked (saying so itself too)."""
    _reply(conn, "200 OK", STREAM_BODY, "text/event-stream", "Connection: close\r\n")
    return False


def endless_header(conn: socket.socket, seen: Seen, server: Hostile, number: int) -> bool:
    """A header value that never ends."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Endless: ")
    _send_bounded(conn, b"a" * 65536)
    return False


def unique_headers(conn: socket.socket, seen: Seen, server: Hostile, number: int) -> bool:
    """Header after header, each with a new name."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    _send_bounded(conn, b"".join(b"X-Header-%d: v\r\n" % index for index in range(4000)))
    return False


def redirect(conn: socket.socket, seen: Seen, server: Hostile, number: int) -> bool:
    """A 307 to another host, where a client that follows it would carry its key."""
    _reply(conn, "307 Temporary Redirect", b"", "text/plain", f"Location: {server.redirect_to}{seen.target}\r\n")
    return True


def drops_reused(conn: socket.socket, seen: Seen, server: Hostile, number: int) -> bool:
    """llama-server: answers one request per connection, then closes while saying keep-alive; a
    request on a reused connection meets end-of-stream before any response byte."""
    if number > 1:
        return False
    _reply(conn, "200 OK", STREAM_BODY, "text/event-stream", "Connection: keep-alive\r\n")
    return True


def silent(conn: socket.socket, seen: Seen, server: Hostile, number: int) -> bool:
    """Reads the request and never answers (until the client hangs up)."""
    conn.settimeout(None)
    while conn.recv(65536):
        pass
    return False


def after_preflight(mode: Mode) -> Mode:
    """``mode`` from the second generation request on: the first (loadgen's preflight) is answered."""

    def hostile_later(conn: socket.socket, seen: Seen, server: Hostile, number: int) -> bool:
        if len(server.generation_requests()) == 1:
            return stream(conn, seen, server, number)
        return mode(conn, seen, server, number)

    return hostile_later


def _send_bounded(conn: socket.socket, piece: bytes) -> None:
    sent = 0
    try:
        while sent < HOSTILE_LIMIT_BYTES:
            conn.sendall(piece)
            sent += len(piece)
    except OSError:
        return  # the client hung up: what the test wants


def _serve_connection(conn: socket.socket, mode: Mode, server: Hostile) -> None:
    buffered = bytearray()
    number = 0
    with conn:
        try:
            while True:
                seen = _read_request(conn, buffered)
                if seen is None:
                    return
                server.seen.append(seen)
                path = seen.target.split("?")[0]
                if path.endswith("/v1/models"):
                    _reply(conn, "200 OK", b'{"data": [{"id": "m"}]}', "application/json")
                    continue
                if path.endswith("/metrics"):
                    _reply(conn, "200 OK", b"# TYPE up gauge\nup 1\n", "text/plain; version=0.0.4")
                    continue
                number += 1
                if not mode(conn, seen, server, number):
                    return
        except OSError:
            return


@contextmanager
def hostile_server(mode: Mode, redirect_to: str = "") -> Iterator[Hostile]:
    server = Hostile("", redirect_to=redirect_to)
    with accepting(lambda conn: _serve_connection(conn, mode, server)) as (url, accepted):
        server.url = url
        server.accepted = accepted
        yield server
