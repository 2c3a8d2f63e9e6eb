"""Secrets stay out of every output: keys echoed inside a stream's error event, a key on its own
(without its "Bearer"), and credentials in the endpoint URL."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from aiohttp import web

from loadgen.cli import main
from tests.threaded_server import chat_app, serve_in_thread

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

    return chat_app(chat)


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


def refusing_with(message: object) -> web.Application:
    """Refuses every request with HTTP 401, its error message ``message(request)``."""

    async def chat(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": message(request)}}, status=401)  # type: ignore[operator]

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], app: web.Application, *flags: str,
            user: str = "") -> str:  # fmt: skip
    """What the console and the result files hold after a preflight the server refused."""
    with serve_in_thread(app) as url:
        url = url.replace("http://", f"http://{user}@") if user else url
        code = main(["run", "--endpoint", url, "--model", "m", "--requests", "1", "--output",
                     str(tmp_path / "out"), *flags])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    files = "".join(path.read_text() for path in (tmp_path / "out").rglob("*") if path.is_file())
    return captured.out + captured.err + files


def test_a_secret_cut_by_the_message_limit_shows_no_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("THE_KEY", KEY)
    app = refusing_with(lambda request: "x" * 284 + " " + request.headers["Authorization"])  # the key across 300
    printed = refused(tmp_path, capsys, app, "--api-key-env", "THE_KEY")
    assert "refused the credentials" in printed
    assert KEY[:6] not in printed


def test_url_credentials_sent_as_basic_auth_are_redacted_in_that_form_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    app = refusing_with(lambda request: f"bad credentials {request.headers.get('Authorization')}")
    printed = refused(tmp_path, capsys, app, user=f"alice:{PASSWORD}")
    assert "bad credentials" in printed
    assert token not in printed and PASSWORD not in printed


def test_a_cookie_value_echoed_alone_is_redacted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = refusing_with(lambda request: f"unknown session {request.cookies.get('session')}")
    printed = refused(tmp_path, capsys, app, "--header", "Cookie: session=sess-9f8e7d6c5b; theme=dark")
    assert "unknown session" in printed and "sess-9f8e7d6c5b" not in printed


def test_terminal_escape_sequences_from_a_server_never_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = refusing_with(lambda request: "\x1b[2J\x1b]0;pwned\x07 denied")
    printed = refused(tmp_path, capsys, app)
    assert "denied" in printed and "\x1b" not in printed and "\x07" not in printed
