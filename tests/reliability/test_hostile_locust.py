"""The hostile suite, Locust mode: secrets in URLs, redirects, the web UI reached from afar."""

from __future__ import annotations

import http.cookiejar
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from loadgen.cli.locust import _check_web_access
from loadgen.errors import ConfigError
from loadgen.locust.guard import state_change_refusal
from loadgen.run.events import Tone
from tests.conftest import free_port
from tests.processes import loadgen_command
from tests.reliability.hostile import after_preflight, hostile_server, redirect, stream

PASSWORD = "pw-9d1e-secret"
QUERY_KEY = "QK-5be0-secret"
KEY = "sk-live-77aa01"


def _run_watching_command_lines(
    line: list[str], secrets: tuple[str, ...], timeout_s: float = 120
) -> tuple[int, str, list[str]]:
    """Runs ``line`` to its end; returns its exit code, its output and every command line of its
    process tree that held a secret while it ran."""
    process = subprocess.Popen(line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    leaked: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                tree = psutil.Process(process.pid).children(recursive=True)
                command_lines = [" ".join(child.cmdline()) for child in tree]
            except psutil.Error:
                command_lines = []
            leaked.update(text for text in command_lines if any(secret in text for secret in secrets))
            time.sleep(0.2)
        output, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait()
    return process.returncode, output.decode("utf-8", "replace"), sorted(leaked)


def test_url_credentials_and_query_keys_stay_out_of_locusts_outputs(tmp_path: Path) -> None:
    """Before: URL credentials on the ps command line and in Locust's --html report, the ?key= value
    thousands of times in its DEBUG log, and the query swallowing the request's path."""
    with hostile_server(stream) as server:
        host = server.url.removeprefix("http://")
        endpoint = f"http://user:{PASSWORD}@{host}/?key={QUERY_KEY}"
        line = loadgen_command("locust", "--headless", "--users", "2", "--run-time", "3s", "--endpoint", endpoint,
                               "--api", "openai-completions", "--model", "m", "--max-tokens", "3",
                               "--header", f"X-Api-Key: {KEY}", "--loglevel", "DEBUG",
                               "--logfile", str(tmp_path / "locust.log"), "--html", str(tmp_path / "locust.html"),
                               "--output", str(tmp_path / "out"))  # fmt: skip
        code, output, leaked = _run_watching_command_lines(line, (PASSWORD, QUERY_KEY, KEY))
    assert code == 0, output[-3000:]
    assert leaked == []
    sent = server.generation_requests()
    assert len(sent) > 2 and {seen.target for seen in sent} == {f"/v1/completions?key={QUERY_KEY}"}
    assert all(seen.headers["x-api-key"] == KEY and seen.headers["authorization"].startswith("Basic ") for seen in sent)
    log = (tmp_path / "locust.log").read_text()
    assert "/v1/completions?key=***" in log  # urllib3's DEBUG lines are there, redacted
    everything = output + "".join(path.read_text(errors="replace") for path in tmp_path.rglob("*") if path.is_file())
    for secret in (PASSWORD, QUERY_KEY, KEY):
        assert secret not in everything


def test_a_redirect_is_not_followed_with_the_key(tmp_path: Path) -> None:
    """Before: Locust mode followed a 307 to another host and sent it the api-key."""
    with hostile_server(stream) as elsewhere, hostile_server(after_preflight(redirect), elsewhere.url) as server:
        line = loadgen_command("locust", "--headless", "--users", "1", "--run-time", "2s", "--endpoint", server.url,
                               "--api", "openai-completions", "--model", "m", "--max-tokens", "3",
                               "--header", f"api-key: {KEY}", "--output", str(tmp_path / "out"))  # fmt: skip
        code, output, _ = _run_watching_command_lines(line, ())
    assert elsewhere.seen == []
    assert len(server.generation_requests()) > 1
    assert code == 3, output[-3000:]  # every request failed: a redirect is an answer loadgen did not ask for
    assert "HTTP 307" in (tmp_path / "out" / "requests.jsonl").read_text()


def test_a_web_ui_on_every_interface_checks_the_host_it_is_reached_by() -> None:
    """Before: --web-host 0.0.0.0 skipped the Host check, so DNS rebinding could start load."""
    options = SimpleNamespace(web_host="0.0.0.0", web_port=8089)
    assert state_change_refusal("192.168.1.20:8089", None, "/swarm", None, options, None) is None
    assert state_change_refusal("[fd00::5]:8089", None, "/swarm", None, options, None) is None
    refused = state_change_refusal("rebound.example:8089", None, "/swarm", None, options, None)
    assert refused == "refused: rebound.example:8089 is not an address or name of this machine"


def test_a_web_ui_on_every_interface_is_warned_and_login_needs_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[tuple[str, Tone]] = []
    events = SimpleNamespace(say=lambda text, tone=Tone.INFO: said.append((text, tone)))
    _check_web_access("0.0.0.0", False, events)  # type: ignore[arg-type]
    assert said and said[0][1] is Tone.WARNING and "anyone who reaches this machine" in said[0][0]
    monkeypatch.delenv("LOADGEN_WEB_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="LOADGEN_WEB_PASSWORD"):
        _check_web_access("127.0.0.1", True, events)  # type: ignore[arg-type]


def test_web_login_works(tmp_path: Path) -> None:
    """Before: every page answered "Locust auth exception" with a traceback in the log."""
    port = free_port()
    environment = {**os.environ, "LOADGEN_WEB_PASSWORD": PASSWORD}
    with hostile_server(stream) as server:
        line = loadgen_command("locust", "--web-login", "--web-port", str(port), "--users", "1", "--endpoint",
                               server.url, "--api", "openai-completions", "--model", "m", "--max-tokens", "3",
                               "--output", str(tmp_path / "out"))  # fmt: skip
        process = subprocess.Popen(line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environment,
                                   start_new_session=True)  # fmt: skip
        try:
            seen = _log_in(f"http://127.0.0.1:{port}")
        finally:
            if process.poll() is None:
                os.killpg(process.pid, 2)
            output = process.communicate(timeout=60)[0].decode("utf-8", "replace")
    assert urllib.parse.urlsplit(seen["before"]).path == "/login", seen
    assert seen["wrong"].endswith("/login"), seen
    assert seen["right"] == f"http://127.0.0.1:{port}/" and "Locust" in seen["page"], seen
    assert "auth exception" not in seen["page"] and "Traceback" not in output, output[-3000:]
    assert PASSWORD not in output


def _log_in(ui: str) -> dict[str, str]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    deadline = time.monotonic() + 60
    while True:
        try:
            with opener.open(f"{ui}/", timeout=5) as response:
                before = response.url
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)

    def submit(password: str) -> tuple[str, str]:
        form = urllib.parse.urlencode({"username": "me", "password": password}).encode()
        request = urllib.request.Request(f"{ui}/loadgen/login", data=form, method="POST",
                                         headers={"Origin": ui})  # fmt: skip
        with opener.open(request, timeout=10) as response:
            return response.url, response.read().decode("utf-8", "replace")

    wrong, _ = submit("not-the-password")
    right, page = submit(PASSWORD)
    return {"before": before, "wrong": wrong, "right": right, "page": page}
