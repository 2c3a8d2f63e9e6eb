"""Answers held whole are capped together: a compression bomb at every user cannot take the
machine's memory (1 GiB across requests in flight, at most 256 MiB each, never under 16 MiB)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from aiohttp import web

from loadgen.cli import main
from loadgen.engine.request import body_limit_bytes
from tests.threaded_server import serve_in_thread

MIB = 1024 * 1024


def test_the_per_request_share_of_the_budget() -> None:
    assert body_limit_bytes(1) == 256 * MIB
    assert body_limit_bytes(16) == 64 * MIB
    assert body_limit_bytes(10_000) == 16 * MIB


def gzip_bomb(megabytes: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(b'{"choices":[{"index":0,"text":"')]
    block = b"a" * MIB
    parts += [compressor.compress(block) for _ in range(megabytes)]
    parts.append(compressor.compress(b'","finish_reason":"length"}]}') + compressor.flush())
    return b"".join(parts)


def test_a_gzip_bomb_at_every_user_is_cut_at_the_share(tmp_path: Path) -> None:
    bomb = gzip_bomb(80)
    served = {"count": 0}

    async def completions(request: web.Request) -> web.Response:
        served["count"] += 1
        if served["count"] == 1:  # the preflight
            return web.json_response({"choices": [{"index": 0, "text": "ok", "finish_reason": "length"}]})
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    output = tmp_path / "out"
    with serve_in_thread(app) as url:
        code = main(["run", "--endpoint", url, "--api", "openai-completions", "--model", "m", "--no-stream",
                     "--concurrency", "16", "--requests", "16", "--warmup", "0", "--quiet",
                     "--output", str(output)])  # fmt: skip
    assert code == 3
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    assert {record["error_kind"] for record in records} == {"protocol_error"}
    assert "larger than 64 MiB" in records[0]["error"]
