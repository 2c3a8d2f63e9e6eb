"""Simulator: a lean fixed-timing server, the reference that truth benchmarks hold loadgen against.

The aiohttp simulator starts a request's clock when its handler runs, which on a busy loop is
well after the request arrived; a reference server should know when the request reached it. This
one reads its sockets with ``recvmsg`` and takes the kernel's arrival stamp of the read that
completed each request (``transport.stamps``), parses HTTP with llhttp, and logs, for every
request, that arrival and the moment each chunk's write returned (the bytes are in the kernel).
Its first chunk is due ``ttft`` after the arrival, later ones every ``itl``; the log holds when
they really went out, so its own timer jitter is part of the truth, not an error.

It speaks OpenAI ``/v1/completions`` and ``/v1/chat/completions`` (streamed SSE in chunked
encoding, or whole JSON), ``/v1/models``, ``/health`` and ``/sim/log``; ``FixedProfile`` only.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import deque

import httptools

from loadgen.sim.profiles import FixedProfile
from loadgen.sim.server import DEFAULT_MAX_TOKENS, RequestLog, SimOptions, vocabulary_words
from loadgen.transport.stamps import CONTROL_BUFFER_BYTES, SO_TIMESTAMPNS, ArrivalStamper, kernel_stamps_available

_READ_BUFFER = memoryview(bytearray(256 * 1024))


class LeanServer:
    def __init__(self, profile: FixedProfile, options: SimOptions) -> None:
        self.profile = profile
        self.options = options
        self.log: list[RequestLog] = []
        self.stamper = ArrivalStamper() if kernel_stamps_available() else None
        self.requests = 0

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        while True:
            client, _ = await loop.sock_accept(sock)
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.stamper is not None and SO_TIMESTAMPNS is not None:
                client.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            _Connection(self, loop, client)


class _Connection:
    """One client connection: requests in order, one answered at a time (HTTP/1.1 keep-alive)."""

    def __init__(self, server: LeanServer, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self._server = server
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._body: list[bytes] = []
        self._arrival_ns = 0
        self._queue: deque[tuple[bytes, bytes, int, bytes]] = deque()
        self._busy = False
        self._closed = False
        self._out = bytearray()
        loop.add_reader(self._fd, self._on_readable)

    # --- reading ---------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            size, ancillary, _, _ = self._sock.recvmsg_into((_READ_BUFFER,), CONTROL_BUFFER_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close()
            return
        read_ns = time.perf_counter_ns()
        if not size:
            self._close()
            return
        stamper = self._server.stamper
        self._arrival_ns = stamper.stamp(ancillary, read_ns) if stamper is not None else read_ns
        try:
            self._parser.feed_data(_READ_BUFFER[:size])
        except httptools.HttpParserError:
            self._respond_now(400, b'{"error":{"message":"bad request"}}')
            self._close()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        self._queue.append((method, self._url, self._arrival_ns, b"".join(self._body)))
        self._url, self._body = b"", []
        if not self._busy:
            self._next()

    # --- answering -------------------------------------------------------------------------------

    def _next(self) -> None:
        if not self._queue or self._closed:
            self._busy = False
            return
        self._busy = True
        method, url, arrival_ns, body = self._queue.popleft()
        path = url.split(b"?", 1)[0]
        if method == b"GET" and path == b"/v1/models":
            model = self._server.options.model
            self._respond_now(200, json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]}).encode())
        elif method == b"GET" and path == b"/health":
            self._respond_now(200, b"ok", b"text/plain")
        elif method == b"GET" and path == b"/sim/log":
            entries = [{"received_ns": e.received_ns, "chunk_ns": e.chunk_ns, "first_word": e.first_word}
                       for e in self._server.log]  # fmt: skip
            self._respond_now(200, json.dumps(entries).encode())
        elif method == b"POST" and path in (b"/v1/completions", b"/v1/chat/completions"):
            self._generate(path == b"/v1/chat/completions", arrival_ns, body)
            return
        else:
            self._respond_now(404, b'{"error":{"message":"not found"}}')
        self._next()

    def _generate(self, chat: bool, arrival_ns: int, body: bytes) -> None:
        try:
            request = json.loads(body)
            text = (" ".join(str(m.get("content", "")) for m in request["messages"]) if chat
                    else str(request["prompt"]))  # fmt: skip
            max_tokens = int(request.get("max_tokens", DEFAULT_MAX_TOKENS))
        except (ValueError, KeyError, TypeError, AttributeError):
            self._respond_now(400, b'{"error":{"message":"invalid request"}}')
            self._next()
            return
        if self._server.profile.output_tokens:
            max_tokens = self._server.profile.output_tokens
        server = self._server
        server.requests += 1
        words = text.split()
        log = RequestLog(arrival_ns, first_word=words[0][:64] if words else "")
        if server.options.keep_log:
            server.log.append(log)
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        answer = _Answer(chat, f"lean-{server.requests}", server.options.model, max(1, len(words)), max_tokens,
                         bool(request.get("stream")), include_usage)  # fmt: skip
        if not answer.stream:
            due_ns = arrival_ns + round((server.profile.ttft_s + server.profile.itl_s * (max_tokens - 1)) * 1e9)
            self._loop.call_later(max(0.0, (due_ns - time.perf_counter_ns()) / 1e9), self._finish_whole, answer, log)
            return
        self._write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        if chat:
            self._write(_chunked(answer.role_frame()))
        self._schedule(answer, log, 0, arrival_ns + round(server.profile.ttft_s * 1e9))

    def _schedule(self, answer: _Answer, log: RequestLog, position: int, due_ns: int) -> None:
        delay_s = (due_ns - time.perf_counter_ns()) / 1e9
        self._loop.call_later(max(0.0, delay_s), self._emit, answer, log, position, due_ns)

    def _emit(self, answer: _Answer, log: RequestLog, position: int, due_ns: int) -> None:
        if self._closed:
            return
        last = position + 1 >= answer.max_tokens
        frame = answer.content_frame(position, last)
        if last:
            frame += answer.closing_frames(position + 1)
        self._write(_chunked(frame) + (b"0\r\n\r\n" if last else b""))
        if self._server.options.keep_log:
            log.chunk_ns.append(time.perf_counter_ns())
        if last:
            self._next()
        else:
            self._schedule(answer, log, position + 1, due_ns + round(self._server.profile.itl_s * 1e9))

    def _finish_whole(self, answer: _Answer, log: RequestLog) -> None:
        if self._closed:
            return
        self._respond_now(200, answer.whole())
        log.chunk_ns.append(time.perf_counter_ns())
        self._next()

    def _respond_now(self, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
        reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"Error")
        self._write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                    % (status, reason, content_type, len(body), body))  # fmt: skip

    def _write(self, data: bytes) -> None:
        if self._closed:
            return
        if self._out:
            self._out += data
            return
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close()
            return
        if sent < len(data):
            self._out += data[sent:]
            self._loop.add_writer(self._fd, self._flush)

    def _flush(self) -> None:
        try:
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close()
            return
        del self._out[:sent]
        if not self._out:
            self._loop.remove_writer(self._fd)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._sock.close()


class _Answer:
    """The frames of one answer, in vLLM's shapes (as the aiohttp simulator writes them)."""

    def __init__(self, chat: bool, request_id: str, model: str, prompt_tokens: int, max_tokens: int, stream: bool,
                 include_usage: bool) -> None:  # fmt: skip
        self.chat, self.max_tokens, self.stream = chat, max_tokens, stream
        self.prompt_tokens, self.include_usage = prompt_tokens, include_usage
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"
        self._prefix = f'{{"id":"{request_id}","object":"{kind}","created":{created},"model":"{model}"'
        self._model = model

    def role_frame(self) -> bytes:
        return (f'data: {self._prefix},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},'
                '"finish_reason":null}]}\n\n').encode()  # fmt: skip

    def content_frame(self, position: int, last: bool) -> bytes:
        text = vocabulary_words(position, 1)[0]
        finish = '"length"' if last else "null"
        content = f'"delta":{{"content":"{text}"}}' if self.chat else f'"text":"{text}"'
        return f'data: {self._prefix},"choices":[{{"index":0,{content},"finish_reason":{finish}}}]}}\n\n'.encode()

    def closing_frames(self, tokens: int) -> bytes:
        usage = ""
        if self.include_usage:
            usage = (f'data: {self._prefix},"choices":[],"usage":{{"prompt_tokens":{self.prompt_tokens},'
                     f'"completion_tokens":{tokens},"total_tokens":{self.prompt_tokens + tokens}}}}}\n\n')  # fmt: skip
        return (usage + "data: [DONE]\n\n").encode()

    def whole(self) -> bytes:
        text = "".join(vocabulary_words(0, self.max_tokens))
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                  if self.chat else {"index": 0, "text": text, "finish_reason": "length"})  # fmt: skip
        usage = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.max_tokens,
                 "total_tokens": self.prompt_tokens + self.max_tokens}  # fmt: skip
        return json.dumps({"id": "lean", "object": "chat.completion" if self.chat else "text_completion",
                           "model": self._model, "choices": [choice], "usage": usage}).encode()  # fmt: skip


def _chunked(frame: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(frame), frame)
