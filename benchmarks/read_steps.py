"""Where one read's CPU goes: loadgen's per-read steps beyond a bare ``recvmsg``, one part at a time.

A real loopback TCP connection; the server side sends one flushed SSE chunk (one token, chunked
transfer encoding), then loadgen's connection reads it: its read callback is called directly, once
per chunk, so every read carries exactly one chunk and no event loop pass is counted. Each line
takes parts away: a bare ``send`` + ``recvmsg_into`` with the kernel stamp (the floor of this loop),
then the connection with a sink that does nothing (without and with the kernel-stamp conversion),
then with the stream decoder (OpenAI completions or chat, or TGI), then the whole sink (decoder,
attempt, its bookkeeping). CPU time of this process, per chunk; medians of the repeats.

    python benchmarks/read_steps.py [--chunks 100000] [--repeats 3] [--api openai-chat|tgi]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import statistics
import time
from collections.abc import Callable

from loadgen.engine.request import Attempt, _BodyReader
from loadgen.protocols.openai import OpenAIStreamDecoder
from loadgen.protocols.tgi import TgiStreamDecoder
from loadgen.transport.connection import HttpConnection, enable_receive_stamps
from loadgen.transport.stamps import CONTROL_BUFFER_BYTES, ArrivalStamper

PAYLOADS = {  # one token's chunk, as flush_server.c writes it
    "openai-completions": b'{"id":"cmpl-flush","object":"text_completion","model":"flush","choices":[{"index":0,'
                          b'"text":" tok","finish_reason":null}]}',
    "openai-chat": b'{"id":"chatcmpl-flush","object":"chat.completion.chunk","model":"flush","choices":[{"index":0,'
                   b'"delta":{"content":" tok"},"finish_reason":null}]}',
    "tgi": b'{"index":7,"token":{"id":1234,"text":" tok","logprob":-0.5,"special":false},"generated_text":null,'
           b'"details":null}',
}  # fmt: skip
DECODERS: dict[str, Callable[[], OpenAIStreamDecoder | TgiStreamDecoder]] = {
    "openai-completions": lambda: OpenAIStreamDecoder(chat=False),
    "openai-chat": lambda: OpenAIStreamDecoder(chat=True),
    "tgi": TgiStreamDecoder,
}
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
Sink = Callable[[int, bytes], bool]


def connected_pair() -> tuple[socket.socket, socket.socket]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    for end in (client, server):
        end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.setblocking(False)
    enable_receive_stamps(client)
    return client, server


def framed(payload: bytes) -> bytes:
    """One SSE event in one HTTP chunk: what a server flushes per token."""
    event = b"data: " + payload + b"\n\n"
    return b"%x\r\n" % len(event) + event + b"\r\n"


def bare(chunks: int, chunk: bytes) -> float:
    client, server = connected_pair()
    buffer = memoryview(bytearray(256 * 1024))
    started = time.process_time()
    for _ in range(chunks):
        server.send(chunk)
        client.recvmsg_into((buffer,), CONTROL_BUFFER_BYTES)
    return time.process_time() - started


def through_connection(chunks: int, chunk: bytes, sink: Sink, stamps: bool = True) -> float:
    loop = asyncio.new_event_loop()
    client, server = connected_pair()
    connection = HttpConnection(loop, client, ArrivalStamper() if stamps else None, None, None, None, None,
                                lambda _: None)  # fmt: skip

    async def open_response() -> None:
        sending = asyncio.ensure_future(connection.send(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
        await asyncio.sleep(0)
        server.recv(4096)
        server.send(HEAD)
        await sending

    loop.run_until_complete(open_response())
    connection.attach(sink)
    loop.remove_reader(client.fileno())  # read by hand below: one call per chunk, no loop pass
    read = connection._on_readable
    started = time.process_time()
    for _ in range(chunks):
        server.send(chunk)
        read()
    elapsed = time.process_time() - started
    loop.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--api", default="openai-completions", choices=sorted(PAYLOADS))
    args = parser.parse_args()
    gc.freeze()
    n, chunk, decoder = args.chunks, framed(PAYLOADS[args.api]), DECODERS[args.api]
    rows: dict[str, list[float]] = {}

    def add(label: str, seconds: float) -> None:
        rows.setdefault(label, []).append(seconds / n * 1e6)

    for _ in range(args.repeats):
        add("send + recvmsg_into (bare)", bare(n, chunk))
        add("connection, sink does nothing, no stamps", through_connection(n, chunk, lambda t, d: False, stamps=False))
        add("connection, sink does nothing", through_connection(n, chunk, lambda t, d: False))
        feed = decoder().feed
        add(
            "connection + stream decoder", through_connection(n, chunk, lambda t, d, feed=feed: bool(feed(d)) and False)
        )
        attempt = Attempt(keep_text=False)
        add("connection + whole sink", through_connection(n, chunk, _BodyReader(attempt, decoder().feed)))
        assert len(attempt.chunk_ns) == n, "every read carried one chunk"
    floor = statistics.median(rows["send + recvmsg_into (bare)"])
    print(f"CPU µs per chunk, --api {args.api}, one chunk per read, medians of {args.repeats} × {n:,} chunks")
    for label, values in rows.items():
        median = statistics.median(values)
        print(f"  {label:<42} {median:6.2f}" + (f"   (+{median - floor:.2f} beyond bare)" if median != floor else ""))


if __name__ == "__main__":
    main()
