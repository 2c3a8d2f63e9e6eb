"""A run whose requests mostly fail, or that loses its server, does not look clean: one line per
failing level and exit code 3 (README, "Exit codes")."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from aiohttp import web

from loadgen.cli import main
from tests.conftest import SimFactory
from tests.threaded_server import serve_in_thread

OK_STREAM = b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


def refusing_after_the_preflight(every: int = 1) -> web.Application:
    """Answers the preflight; after it, refuses every ``every``-th request (1: all of them)."""
    served = {"count": 0}

    async def chat(request: web.Request) -> web.StreamResponse:
        served["count"] += 1
        if served["count"] > 1 and served["count"] % every == 0:
            return web.json_response({"error": {"message": "max_tokens 5000 > 2048"}}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(OK_STREAM)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def test_every_request_refused_exits_3_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_in_thread(refusing_after_the_preflight()) as url:
        code = main(["run", "--endpoint", url, "--model", "m", "--requests", "6", "--warmup", "0", "--quiet",
                     "--output", str(tmp_path / "out")])  # fmt: skip
    out = capsys.readouterr().out.replace("\n", " ")
    assert code == 3
    assert "no request completed (6 failed" in out and "max_tokens 5000 > 2048" in out


def test_a_server_killed_mid_run_exits_3(start_sim: SimFactory, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    sim = start_sim("fixed:5,5")
    threading.Timer(1.0, sim.stop).start()
    code = main(["run", "--endpoint", sim.url, "--concurrency", "4", "--requests", "400", "--max-tokens", "8",
                 "--quiet", "--output", str(tmp_path / "out")])  # fmt: skip
    out = capsys.readouterr().out.replace("\n", " ")
    assert code == 3 and "over --max-error-rate" in out and "connect" in out


def test_half_refused_exits_3_unless_tolerated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "--model", "m", "--requests", "8", "--warmup", "0", "--quiet"]
    with serve_in_thread(refusing_after_the_preflight(every=2)) as url:
        strict = main([*args, "--endpoint", url, "--output", str(tmp_path / "a")])
    assert "4 of 8 requests failed (50.0%, over --max-error-rate 5%)" in capsys.readouterr().out.replace("\n", " ")
    with serve_in_thread(refusing_after_the_preflight(every=2)) as url:
        tolerant = main([*args, "--endpoint", url, "--max-error-rate", "60%", "--output", str(tmp_path / "b")])
    assert (strict, tolerant) == (3, 0)
