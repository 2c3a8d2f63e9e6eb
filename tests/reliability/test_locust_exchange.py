"""Locust mode's request path keeps loadgen's limits and records: --request-timeout ends an
endless stream, and a request cut off by the test's stop is recorded as cancelled."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests
from aiohttp import web

from loadgen.config import GenerationConfig
from loadgen.errors import ErrorKind
from loadgen.locust.exchange import BlockingContext, exchange
from loadgen.prompts import Prompt
from loadgen.protocols import get_codec
from loadgen.protocols.base import GenerationParams
from loadgen.records import RequestRecord
from tests.threaded_server import serve_in_thread

CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n'


def endless_app() -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for _ in range(2000):  # 100 s of tokens, bounded
            await response.write(CHUNK)
            await asyncio.sleep(0.05)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def context(url: str, total_timeout_s: float) -> BlockingContext:
    return BlockingContext(base_url=url, codec=get_codec("openai-chat"),
                           params=GenerationParams("m", GenerationConfig(max_tokens=8)), headers={},
                           connect_timeout_s=5, read_timeout_s=5, run_start_ns=0, token_counter=None,
                           redact=lambda text: text, total_timeout_s=total_timeout_s)  # fmt: skip


def test_request_timeout_ends_an_endless_stream() -> None:
    with serve_in_thread(endless_app()) as url, requests.Session() as session:
        started = time.monotonic()
        record = exchange(session, context(url, 0.6), 0, Prompt("p", text="hi"))
    assert time.monotonic() - started < 3
    assert record.error_kind is ErrorKind.TIMEOUT and "--request-timeout" in (record.error or "")
    assert len(record.chunk_ns) >= 5  # the tokens before the limit are kept


def test_a_request_stopped_mid_way_is_recorded_as_cancelled() -> None:
    class Stopped(BaseException):
        """What Locust raises in a user's greenlet when the test stops (GreenletExit)."""

    class StoppingSession:
        def request(self, *args: object, **kwargs: object) -> None:
            raise Stopped

    cancelled: list[RequestRecord] = []
    with pytest.raises(Stopped):
        exchange(StoppingSession(), context("http://127.0.0.1:1", 5), 7, Prompt("p", text="hi"),  # type: ignore[arg-type]
                 on_cancelled=cancelled.append)  # fmt: skip
    assert [(record.index, record.error_kind) for record in cancelled] == [(7, ErrorKind.CANCELLED)]
