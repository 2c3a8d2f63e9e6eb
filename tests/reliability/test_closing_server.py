"""A server that closes the connection after every streamed answer while saying keep-alive (as
llama-server does): every request still succeeds (re-sent once on a fresh connection when the
reused one is dead), and the console says what the server does."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loadgen.cli import main
from tests.threaded_server import accepting

FRAMES = [{"choices": [{"index": 0, "text": word, "finish_reason": None}]} for word in (" a", " b")] + [
    {"choices": [{"index": 0, "text": " c", "finish_reason": "length"}]},
    {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}},
]


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _answer(conn: socket.socket) -> None:
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return
            data += piece
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive\r\n"
        body = b"".join(_chunk(b"data: " + json.dumps(frame).encode() + b"\n\n") for frame in FRAMES)
        try:
            conn.sendall(
                head + b"Transfer-Encoding: chunked\r\n\r\n" + body + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
            )
        except OSError:
            return  # the preflight reads only its first token and hangs up


@contextmanager
def closing_server() -> Iterator[str]:
    with accepting(_answer) as (url, _):
        yield url


def test_a_server_that_closes_after_each_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with closing_server() as url:
        code = main(["run", "--endpoint", url, "--api", "openai-completions", "--model", "m", "--concurrency", "2",
                     "--requests", "12", "--max-tokens", "3", "--output", str(tmp_path)])  # fmt: skip
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0, printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["requests"]["completed"] == 12 and summary["requests"]["failed"] == 0
    assert summary["client"]["connections"]["reconnects"] >= 6
    assert "the server closed the connection after most responses" in printed
