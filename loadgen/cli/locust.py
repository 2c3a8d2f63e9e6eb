"""CLI tier: ``loadgen locust``'s options, and the Locust command line they make.

The plan is resolved as for ``loadgen run`` (``build_plan``); ``loadgen.locust.launch`` starts
Locust with it. Locust's own options not listed here pass through unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console

from loadgen.cli.console import ConsoleEvents
from loadgen.cli.plan import build_plan
from loadgen.errors import ConfigError
from loadgen.locust.guard import listens_beyond_this_machine
from loadgen.locust.launch import LOCUSTFILE, launch
from loadgen.locust.webui import WEB_PASSWORD_ENV
from loadgen.parsing import port, public_url
from loadgen.run.events import Tone


def add_locust_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        f"Locust (other Locust options pass through, e.g. --web-login, which asks for ${WEB_PASSWORD_ENV})"
    )
    group.add_argument("--headless", action="store_true", help="no web UI: start at once, stop after --run-time")
    group.add_argument("--users", "-u", type=int, help="peak users (default: the largest --concurrency, else 1)")
    group.add_argument("--spawn-rate", "-r", type=float, help="users started per second (default: all at once)")
    group.add_argument("--run-time", "-t", help="stop after this long, e.g. 60s or 5m (headless)")
    group.add_argument("--web-host", default="127.0.0.1", help="web UI address (default 127.0.0.1)")
    group.add_argument("--web-port", type=port, default=8089, help="web UI port")
    group.add_argument("--master", action="store_true", help="run as Locust master; workers join it")
    group.add_argument("--master-bind-host", default="127.0.0.1", help="master: address workers connect to")
    group.add_argument("--master-bind-port", type=port, default=5557)
    group.add_argument("--worker", action="store_true", help="run as a Locust worker of --master-host")
    group.add_argument("--master-host", default="127.0.0.1", help="worker: the master's address")
    group.add_argument("--master-port", type=port, default=5557)
    group.add_argument("--expect-workers", type=int, help="master, headless: wait for this many workers")
    group.add_argument("--processes", type=int, help="run a master and this many workers on this machine")
    # Locust's own options that take a value: declared, so that their value is not taken for the
    # scenario file (``--csv lc`` read "lc: no such scenario file"); passed on as given
    for flag, metavar in PASSED_VALUE_OPTIONS:
        group.add_argument(flag, dest=_dest(flag), metavar=metavar, help=f"passed to Locust's {flag}")


PASSED_VALUE_OPTIONS = (("--csv", "PREFIX"), ("--html", "FILE"), ("--logfile", "FILE"), ("--loglevel", "LEVEL"),
                        ("--tags", "TAGS"), ("--exclude-tags", "TAGS"))  # fmt: skip


def _dest(flag: str) -> str:
    return "locust_" + flag.removeprefix("--").replace("-", "_")


def _passed_options(args: argparse.Namespace) -> list[str]:
    passed: list[str] = []
    for flag, _ in PASSED_VALUE_OPTIONS:
        value = getattr(args, _dest(flag), None)
        if value is not None:
            passed += [flag, value]
    return passed


def locust_command(args: argparse.Namespace, host: str, users: int, extra: list[str]) -> list[str]:
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", host]
    if args.worker:
        return [*command, "--worker", "--master-host", args.master_host, "--master-port", str(args.master_port),
                *_passed_options(args), *extra]  # fmt: skip
    spawn_rate = args.spawn_rate or users
    command += ["--users", str(users), "--spawn-rate", f"{spawn_rate:g}"]
    if args.headless:
        command += ["--headless"]
        if args.run_time:
            command += ["--run-time", args.run_time]
    else:
        command += ["--web-host", args.web_host, "--web-port", str(args.web_port)]
        if args.run_time:
            command += ["--run-time", args.run_time]
    if args.master:
        command += ["--master", "--master-bind-host", args.master_bind_host, "--master-bind-port",
                    str(args.master_bind_port)]  # fmt: skip
        if args.expect_workers:
            command += ["--expect-workers", str(args.expect_workers)]
    if args.processes:
        command += ["--processes", str(args.processes)]
    return [*command, *_passed_options(args), *extra]


def run_locust(args: argparse.Namespace, extra: list[str], console: Console) -> int:
    if args.master and args.worker:
        raise ConfigError("--master and --worker: choose one")
    plan = build_plan(args, True)  # a scenario written for sweeps is fine: Locust takes its peak
    load = max(plan.levels, key=lambda level: level.concurrency)
    given = dict(plan.config_record).get("concurrency")  # set by the scenario or a flag, not the sweep default
    users = args.users if args.users is not None else int(load.concurrency) if given else 1
    web_ui = None if args.worker or args.headless else f"http://{args.web_host}:{args.web_port}"
    events = ConsoleEvents(console)
    if web_ui is not None:
        _check_web_access(args.web_host, "--web-login" in extra, events)
    # Locust shows and reports its --host: the URL without credentials or query (the Locust
    # processes read the whole one from the job file)
    command = lambda url: locust_command(args, public_url(url), users, extra)  # noqa: E731
    return launch(plan, load, command, events, worker=args.worker, web_ui=web_ui)


def _check_web_access(web_host: str, login: bool, events: ConsoleEvents) -> None:
    if login and not os.environ.get(WEB_PASSWORD_ENV):
        raise ConfigError(f"--web-login: set the password in the environment variable {WEB_PASSWORD_ENV}")
    if listens_beyond_this_machine(web_host) and not login:
        warning = (f"the web UI listens on {web_host}: anyone who reaches this machine can start load with your "
                   f"keys; --web-login (password in ${WEB_PASSWORD_ENV}) or a firewall keeps them out")  # fmt: skip
        events.say(warning, Tone.WARNING)
