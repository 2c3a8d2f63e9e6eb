"""Secrets stay out of every output: keys echoed inside a stream's error event, a key on its own
(without its "Bearer"), and credentials in the endpoint URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from loadgen.cli import main
from tests.threaded_server import serve_in_thread

KEY = "sk-live-4f9c2d7e1a"
PASSWORD = "hunter2-PASSWORD"
QUERY_KEY = "QK-7731-secret"


def echoing_app() -> web.Application:
    """Answers the preflight, then streams an error event that echoes the key it was sent."""
    served = {"count": 0}

    async def chat(request: web.Request) -> web.StreamResponse:
        served["count"] += 1
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if served["count"] == 1:
            await response.write(b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n')
            await response.write(b"data: [DONE]\n\n")
        else:
            error = {"error": {"message": f"invalid key {key} for {request.url}"}}
            await response.write(f"data: {json.dumps(error)}\n\n".encode())
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def test_no_secret_reaches_any_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_in_thread(echoing_app()) as url:
        host = url.removeprefix("http://")
        endpoint = f"http://user:{PASSWORD}@{host}/?key={QUERY_KEY}"
        output = tmp_path / "out"
        code = main(["run", "--endpoint", endpoint, "--header", f"Authorization: Bearer {KEY}", "--concurrency", "1",
                     "--requests", "3", "--warmup", "0", "--output", str(output)])  # fmt: skip
        assert main(["report", str(output), "--output", str(tmp_path / "report.html")]) == 0
    printed = capsys.readouterr()
    assert code == 3  # every request failed (the echoing error event): said, not hidden
    records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    assert [record["error_kind"] for record in records] == ["server_error"] * 3
    assert "invalid key ***" in records[0]["error"]
    everything = printed.out + printed.err + "".join(path.read_text() for path in tmp_path.rglob("*") if path.is_file())
    for secret in (KEY, PASSWORD, QUERY_KEY):
        assert secret not in everything


def test_aws_key_id_secret_and_session_token_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadgen.scenario.plan import aws_secrets

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret-access-key")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "example-session-token-value")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    assert set(aws_secrets(None)) == {
        "AKIAEXAMPLEKEYID1234",
        "example-secret-access-key",
        "example-session-token-value",
    }
