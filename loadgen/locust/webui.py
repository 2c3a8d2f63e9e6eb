"""Locust mode: loadgen's part of Locust's web UI (Flask, inside the Locust process).

- the loadgen tab: Locust's extended-tab table of exact HDR figures (``/stats/requests`` carries
  its rows), and under it a frame with live charts (``/loadgen/charts``, drawn with Plotly.js from
  ``/loadgen/history``); Locust's extended tabs draw tables only, so a small script put into the
  UI's page adds the frame while the tab is shown;
- the "Download Data" tab gets the LLM stats CSVs;
- state changes (start, stop, a new host) are refused unless they come from the UI's own page;
- ``--web-login``: Locust's login page, checked against ``LOADGEN_WEB_PASSWORD`` (an environment
  variable, never a command-line argument that ``ps`` would show).
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import secrets
import threading
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from loadgen.locust.guard import state_change_refusal
from loadgen.locust.live import LiveHistory, stats_csv_text
from loadgen.locust.recorder import TABLE_STRUCTURE
from loadgen.metrics.aggregate import Aggregator

if TYPE_CHECKING:
    from locust.env import Environment


class LiveSource(Protocol):
    """What the web UI reads of this process's test (``loadgen.locust.users.LoadgenLocust``)."""

    lock: threading.Lock
    history: LiveHistory
    tests: int
    pinned_target: str | None

    def aggregator(self) -> Aggregator: ...

    def extended_stats(self) -> list[dict[str, object]]: ...


WEB_PASSWORD_ENV = "LOADGEN_WEB_PASSWORD"
TAB_KEY = "loadgen"
TAB_SCRIPT = b'<script defer src="./loadgen/tab.js"></script>'


def extend_web_ui(environment: Environment, process: LiveSource) -> None:
    from flask import Response, request

    web_ui = environment.web_ui
    assert web_ui is not None and web_ui.app is not None
    app = web_ui.app
    web_ui.template_args["extendedTabs"] = [{"title": "loadgen: LLM latency", "key": TAB_KEY}]
    web_ui.template_args["extendedTables"] = [{"key": TAB_KEY, "structure": TABLE_STRUCTURE}]
    web_ui.template_args["extendedCsvFiles"] = [
        {"href": "./loadgen/llm_stats.csv", "title": "Download loadgen LLM stats CSV"},
        {"href": "./loadgen/llm_stats_history.csv", "title": "Download loadgen LLM stats history CSV"},
    ]

    @app.before_request
    def guard_state_changes() -> Any:
        """Requests that change the test must come from the UI's own page: a cross-site form or a
        page reached by DNS rebinding is refused, and so is a new target host."""
        if request.method != "POST":
            return None
        refusal = state_change_refusal(request.host, request.headers.get("Origin"), request.path,
                                       request.form.get("host"), environment.parsed_options,
                                       process.pinned_target)  # fmt: skip
        if refusal is not None:
            return {"success": False, "message": refusal}, 403
        return None

    @app.after_request
    def add_loadgen(response: Any) -> Any:
        if response.status_code != 200 or response.direct_passthrough:
            return response
        if request.path == "/swarm" and request.method == "POST":
            if (response.get_json(silent=True) or {}).get("success"):
                _wait_for_start(environment.runner)
        elif request.path == "/stats/requests":
            body = json.loads(response.get_data())
            runner = environment.runner
            if runner is not None:
                _wait_out_stopping(runner)
                # fresh, not Locust's answer of up to 2 s ago (it caches it): a "ready" cached before a
                # start reached the page after the start and ended its polling, the page stuck at READY
                body["state"], body["user_count"] = runner.state, runner.user_count
            body["extendedStats"] = process.extended_stats()
            response.set_data(json.dumps(body))
        elif request.path in ("/", "") and response.mimetype == "text/html":
            page = response.get_data()
            if TAB_SCRIPT not in page:
                response.set_data(page.replace(b"</head>", TAB_SCRIPT + b"</head>", 1))
        return response

    guarded: Any = web_ui.auth_required_if_enabled  # untyped in Locust

    def loadgen_tab_script() -> Any:
        return Response(_static("tab.js"), mimetype="text/javascript")

    def loadgen_charts() -> Any:
        return Response(_static("charts.html"), mimetype="text/html")

    def loadgen_plotly() -> Any:
        response = Response(_plotly_js(), mimetype="text/javascript")
        response.headers["Cache-Control"] = "max-age=86400"
        return response

    def loadgen_history() -> Any:
        since = request.args.get("since", "0")
        with process.lock:
            body = process.history.to_json_dict(int(since) if since.isdigit() else 0)
        return {**body, "test": process.tests}

    def loadgen_stats_csv() -> Any:
        with process.lock:
            text = stats_csv_text(process.aggregator())
        return _download(text, "llm_stats.csv")

    def loadgen_history_csv() -> Any:
        with process.lock:
            text = process.history.csv_text()
        return _download(text, "llm_stats_history.csv")

    # Locust's login guard, when --web-login is on: registered, not decorated (the guard is untyped)
    app.add_url_rule("/loadgen/tab.js", view_func=guarded(loadgen_tab_script))
    app.add_url_rule("/loadgen/charts", view_func=guarded(loadgen_charts))
    app.add_url_rule("/loadgen/plotly.js", view_func=guarded(loadgen_plotly))
    app.add_url_rule("/loadgen/history", view_func=guarded(loadgen_history))
    app.add_url_rule("/loadgen/llm_stats.csv", view_func=guarded(loadgen_stats_csv))
    app.add_url_rule("/loadgen/llm_stats_history.csv", view_func=guarded(loadgen_history_csv))
    if web_ui.web_login:
        _enable_login(web_ui, os.environ.get(WEB_PASSWORD_ENV, ""))


STOPPING_WAIT_S = 30.0
STARTING_WAIT_S = 10.0


def _wait_for_start(runner: Any) -> None:
    """Locust answers a start before its runner has left "ready" (the start runs in a greenlet of
    its own), and its page takes the answer's success for RUNNING: a poll answered after that but
    before the runner started said "ready", and the page stopped polling, stuck at READY. The start's
    answer waits until the runner has started (at most ``STARTING_WAIT_S``)."""
    from locust.runners import STATE_INIT, STATE_STOPPED

    _wait_while(runner, (STATE_INIT, STATE_STOPPED), STARTING_WAIT_S)


def _wait_out_stopping(runner: Any) -> None:
    """Locust's page polls the test's state only while it spawns or runs: a poll answered in the
    moment a stop cleans up ("cleanup", "stopping") ended the polling, and the page said CLEANUP
    with a spinning Stop button for good (seen on a busy machine, where stopping the users takes
    a while). Such an answer waits until the stop is done (at most ``STOPPING_WAIT_S``)."""
    from locust.runners import STATE_CLEANUP, STATE_STOPPING

    _wait_while(runner, (STATE_CLEANUP, STATE_STOPPING), STOPPING_WAIT_S)


def _wait_while(runner: Any, states: tuple[str, ...], limit_s: float) -> None:
    """Yields to Locust's greenlets while the runner is in one of ``states``, at most ``limit_s``."""
    import gevent

    waited = 0.0
    while runner is not None and runner.state in states and waited < limit_s:
        gevent.sleep(0.05)
        waited += 0.05


def _enable_login(web_ui: Any, password: str) -> None:
    """Locust's login page, with one password (any user name); a session lasts while this process
    runs (its signing key is made here). Without a password no login succeeds."""
    from flask import redirect, request, session, url_for
    from flask_login import UserMixin, login_user

    class Operator(UserMixin):  # type: ignore[misc]  # flask_login is untyped: UserMixin is Any
        id = "loadgen"

    web_ui.app.config["SECRET_KEY"] = secrets.token_hex(32)
    web_ui.login_manager.user_loader(lambda user_id: Operator() if user_id == Operator.id else None)
    web_ui.auth_args = {"username_password_callback": "./loadgen/login"}

    def login_submit() -> Any:
        given = request.form.get("password", "").encode()
        if password and hmac.compare_digest(given, password.encode()):
            login_user(Operator())
            return redirect(url_for("locust.index"))
        session["auth_error"] = "wrong password"
        return redirect(url_for("locust.login"))

    web_ui.app.add_url_rule("/loadgen/login", view_func=login_submit, methods=["POST"])


def _download(text: str, name: str) -> Any:
    from flask import Response

    response = Response(text, mimetype="text/csv")
    response.headers["Content-Disposition"] = f"attachment; filename={name}"
    return response


@functools.cache
def _static(name: str) -> str:
    return resources.files("loadgen.locust").joinpath("static").joinpath(name).read_text("utf-8")


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())
