"""The server's own account of each request, where it gives one: llama.cpp's ``timings`` (in its
last chunk) and TGI's ``x-*-time`` headers, read from recorded responses (split at every byte) and
from servers that send them; odd values are not figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from loadgen.cli import main
from loadgen.config import EndpointConfig
from loadgen.prompts.model import Prompt
from loadgen.protocols import endpoint_codec
from loadgen.protocols.base import ServerTimings, llama_cpp_timings, tgi_header_timings
from tests.threaded_server import chat_app, serve_in_thread

TIMINGS = {"prompt_n": 12, "prompt_ms": 31.5, "predicted_n": 4, "predicted_ms": 88.25, "cache_n": 0}
CHUNKS = [
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    *({"choices": [{"index": 0, "delta": {"content": word}}]} for word in (" a", " b", " c")),
    {"choices": [{"index": 0, "delta": {"content": " d"}, "finish_reason": "length"}]},
    {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 4}, "timings": TIMINGS},
]
BODY = b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in CHUNKS) + b"data: [DONE]\n\n"


def test_llama_cpp_timings_in_a_stream_split_anywhere() -> None:
    codec = endpoint_codec(EndpointConfig(url="http://x", api="openai-chat"))
    for cut in range(len(BODY) + 1):
        decoder = codec.decoder(True, Prompt(id="p", text="q"))
        events = decoder.feed(BODY[:cut]) + decoder.feed(BODY[cut:]) + decoder.close()
        timings = [event for event in events if type(event) is ServerTimings]
        assert timings == [ServerTimings("llama.cpp timings", prefill_ms=31.5, decode_ms=88.25, total_ms=119.75)], cut


@pytest.mark.parametrize("odd", [{"prompt_ms": "fast"}, {"prompt_ms": -3}, {"prompt_ms": True}, [], None, {}])
def test_odd_timings_are_not_figures(odd: object) -> None:
    assert llama_cpp_timings(odd) is None


def test_tgi_headers() -> None:
    timings = tgi_header_timings({"x-queue-time": "12", "x-inference-time": "140", "x-total-time": "155",
                                  "x-time-per-token": "20", "x-compute-type": "1-nvidia-a10g"})  # fmt: skip
    assert timings == ServerTimings("TGI x-*-time headers", queue_ms=12.0, compute_ms=140.0, total_ms=155.0)
    assert tgi_header_timings({"x-queue-time": "soon"}) is None and tgi_header_timings({}) is None


def test_a_level_carries_the_servers_own_account(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def completions(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(BODY)
        return response

    output = tmp_path / "run"
    with serve_in_thread(chat_app(completions)) as url:
        assert main(["run", "--endpoint", url, "--requests", "6", "--warmup", "0", "--output", str(output)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    assert all(r["server_timings"] == {"source": "llama.cpp timings", "queue_ms": None, "prefill_ms": 31.5,
                                       "decode_ms": 88.25, "compute_ms": None, "ttft_ms": None,
                                       "total_ms": 119.75}
               for r in records)  # fmt: skip
    account = json.loads((output / "summary.json").read_text())["server_timings"]
    assert account["requests"] == 6 and account["share"] == 1.0 and account["sources"] == {"llama.cpp timings": 6}
    assert account["prefill_ms"]["p50"] == pytest.approx(31.5, rel=0.01) and account["queue_ms"] is None
    assert "server's own account (llama.cpp timings, 6 of 6 requests): prefill p50 31.5" in shown
