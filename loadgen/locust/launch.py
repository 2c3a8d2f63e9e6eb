"""``loadgen locust``: run Locust with loadgen's users, configured from a scenario and flags.

The command resolves the plan as ``loadgen run`` does (scenario, flags, the simulator when no
endpoint is given, the preflight request), writes it as a job file only this user can read, and
starts Locust on ``locustfile.py`` in a child process (Locust patches the interpreter for gevent,
so it never runs inside this one). Locust's own options not listed here pass through unchanged.
This module does not import Locust.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from loadgen.errors import ConfigError
from loadgen.report.files import prepare_output_dir

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def add_locust_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Locust (other Locust options pass through, e.g. --web-login)")
    group.add_argument("--headless", action="store_true", help="no web UI: start at once, stop after --run-time")
    group.add_argument("--users", "-u", type=int, help="peak users (default: the largest --concurrency, else 1)")
    group.add_argument("--spawn-rate", "-r", type=float, help="users started per second (default: all at once)")
    group.add_argument("--run-time", "-t", help="stop after this long, e.g. 60s or 5m (headless)")
    group.add_argument("--web-host", default="127.0.0.1", help="web UI address (default 127.0.0.1)")
    group.add_argument("--web-port", type=int, default=8089, help="web UI port")
    group.add_argument("--master", action="store_true", help="run as Locust master; workers join it")
    group.add_argument("--master-bind-host", default="127.0.0.1", help="master: address workers connect to")
    group.add_argument("--master-bind-port", type=int, default=5557)
    group.add_argument("--worker", action="store_true", help="run as a Locust worker of --master-host")
    group.add_argument("--master-host", default="127.0.0.1", help="worker: the master's address")
    group.add_argument("--master-port", type=int, default=5557)
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
    if args.master and args.worker:
        raise ConfigError("--master and --worker: choose one")
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
    from loadgen.cli import build_plan
    from loadgen.report.console import print_run, telemetry_table
    from loadgen.report.files import write_json
    from loadgen.session import _endpoint_for, _run_loop, _telemetry, prepared_endpoint
    from loadgen.telemetry.summary import summarize_window
    from loadgen.workers import job_for

    plan = build_plan(args, sweep=True)  # a scenario written for sweeps is fine: Locust takes its peak
    if plan.endpoint.api == "triton-grpc" or plan.endpoint.api == "sagemaker":
        raise ConfigError(f"--api {plan.endpoint.api} is not available in Locust mode (HTTP APIs only)")
    load = max(plan.levels, key=lambda level: level.concurrency)
    given = dict(plan.config_record).get("concurrency")  # set by the scenario or a flag, not the sweep default
    users = args.users if args.users is not None else int(load.concurrency) if given else 1
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(_endpoint_for(plan, console))
        endpoint = _run_loop(prepared_endpoint(plan, endpoint, console))
        prepare_output_dir(plan.output_dir)
        job_dir = tempfile.mkdtemp(prefix="loadgen-locust-")
        job_file = Path(job_dir) / "job.json"
        job_file.touch(mode=0o600)
        job_file.write_text(json.dumps(job_for(plan, endpoint, load, plan.output_dir)), encoding="utf-8")
        command = locust_command(args, endpoint.url, users, extra)
        if not args.worker and not args.headless:
            console.print(f"Locust web UI on http://{args.web_host}:{args.web_port} (Ctrl-C to stop)", style="bold")
        env = {**os.environ, "LOADGEN_LOCUST_JOB": str(job_file)}
        process = subprocess.Popen(command, env=env)
        sidecar = None if args.worker else stack.enter_context(_telemetry(plan, endpoint, console, process.pid))
        try:
            code = process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            code = process.wait()
        finally:
            job_file.unlink(missing_ok=True)
            os.rmdir(job_dir)
        summary_file = plan.output_dir / "summary.json"
        if args.worker or not summary_file.exists():
            return code
        summary = json.loads(summary_file.read_text("utf-8"))
        if sidecar is not None:
            window = summary.get("locust") or {}
            samples = sidecar.window(int(window.get("monotonic_start_ns", 0)), int(window.get("monotonic_end_ns", 0)))
            summary["telemetry"] = summarize_window(samples, int(summary["tokens"]["output_total"]))
            write_json(summary_file, summary)
    print_run(console, summary)
    if summary.get("telemetry"):
        console.print(telemetry_table([summary]))
    console.print(f"Results in {plan.output_dir}", style="dim")
    return code
