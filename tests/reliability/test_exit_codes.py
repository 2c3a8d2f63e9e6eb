"""A run whose requests mostly fail, or that loses its server, does not look clean: one line per
failing level and exit code 3 (README, "Exit codes")."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from loadgen.cli import main
from tests.conftest import SimFactory
from tests.threaded_server import serve_in_thread

OK_STREAM = b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


def refusing_app(refusal: Callable[[int, dict[str, Any]], str | None]) -> web.Application:
    """A chat server that answers with one short stream, or with HTTP 400 and the message that
    ``refusal(request number, body)`` gives."""
    served = {"count": 0}

    async def chat(request: web.Request) -> web.StreamResponse:
        served["count"] += 1
        message = refusal(served["count"], await request.json())
        if message is not None:
            return web.json_response({"error": {"message": message}}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(OK_STREAM)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def refusing_after_the_preflight(every: int = 1) -> web.Application:
    """Answers the preflight; after it, refuses every ``every``-th request (1: all of them)."""
    return refusing_app(lambda number, body: "max_tokens 5000 > 2048" if number > 1 and number % every == 0 else None)


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


def endless_after_the_preflight() -> web.Application:
    served = {"count": 0}

    async def chat(request: web.Request) -> web.StreamResponse:
        served["count"] += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if served["count"] == 1:
            await response.write(OK_STREAM)
            return response
        for _ in range(600):  # bounded: 60 s at most
            await response.write(b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n')
            await asyncio.sleep(0.1)
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def test_requests_cut_off_at_the_end_are_shown_and_fail_the_run(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    started = time.monotonic()
    with serve_in_thread(endless_after_the_preflight()) as url:
        code = main(["run", "--endpoint", url, "--model", "m", "--rate", "2", "--duration", "1s",
                     "--drain-timeout", "0.5s", "--warmup", "0", "--output", str(tmp_path / "out")])  # fmt: skip
    out = capsys.readouterr().out.replace("\n", " ")
    assert time.monotonic() - started < 10
    assert code == 3
    assert "2 still running at the end (cancelled after" in out
    assert "no request completed (0 failed, 2 still running at the end)" in out


@pytest.mark.parametrize("flag", ["--request-timeout", "--first-token-timeout", "--connect-timeout",
                                  "--hlog-interval"])  # fmt: skip
def test_a_limit_of_zero_is_refused(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", flag, "0", "--requests", "1"]) == 2
    assert f"{flag}: expected a duration above zero" in capsys.readouterr().err


def limit_checking_app() -> web.Application:
    """Refuses a max_tokens over 2048 (as vLLM does past the model's length); else streams."""
    return refusing_app(lambda number, body: "max_tokens must be at most 2048" if body.get("max_tokens", 0) > 2048
                        else None)  # fmt: skip


def test_the_preflight_sends_the_runs_own_max_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_in_thread(limit_checking_app()) as url:
        refused = main(["run", "--endpoint", url, "--model", "m", "--max-tokens", "5000", "--requests", "2",
                        "--output", str(tmp_path / "a")])  # fmt: skip
        err = capsys.readouterr().err
        accepted = main(["run", "--endpoint", url, "--model", "m", "--max-tokens", "100", "--requests", "2",
                         "--warmup", "0", "--quiet", "--output", str(tmp_path / "b")])  # fmt: skip
    assert refused == 1 and "max_tokens must be at most 2048" in err and "Traceback" not in err
    assert not (tmp_path / "a" / "summary.json").exists()  # no load was sent
    assert accepted == 0


def test_a_model_list_that_fails_is_one_line_not_a_silent_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def models(request: web.Request) -> web.Response:
        return web.json_response({"error": "database down"}, status=500)

    app = refusing_app(lambda number, body: None)
    app.router.add_get("/v1/models", models)
    with serve_in_thread(app) as url:
        code = main(["run", "--endpoint", url, "--requests", "1", "--output", str(tmp_path / "out")])
    assert code == 1 and "/v1/models answered HTTP 500" in capsys.readouterr().err
