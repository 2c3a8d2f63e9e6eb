"""Locust mode: start Locust with loadgen's users on a resolved plan (no argparse, no Locust here).

``launch`` does what ``loadgen run`` does before the load (the simulator when no endpoint is
given, the preflight request), writes the plan as a job file only this user can read, and starts
Locust on ``locustfile.py`` in a child process (Locust patches the interpreter for gevent, so it
never runs inside this one), with the telemetry sidecar beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from loadgen.config import LoadConfig
from loadgen.errors import ConfigError
from loadgen.eventloop import run_loop
from loadgen.metrics.results import read_summary
from loadgen.protocols.apis import api_spec
from loadgen.report.console import print_run, telemetry_table
from loadgen.report.files import prepare_output_dir
from loadgen.run.endpoint import endpoint_for, prepared_endpoint, telemetry_sidecar
from loadgen.run.workers import job_for
from loadgen.scenario.plan import Plan

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
JOB_ENV = "LOADGEN_LOCUST_JOB"  # a JSON file: the job the Locust processes read (loadgen.locust.users)


def launch(plan: Plan, load: LoadConfig, locust_command: Callable[[str], list[str]], console: Console, *,
           worker: bool = False, web_ui: str | None = None) -> int:  # fmt: skip
    """Runs Locust (``locust_command(endpoint_url)``) on ``plan`` at ``load``; returns its exit code.
    A worker only sends load: the master writes the results and runs the sidecar."""
    if not api_spec(plan.endpoint.api).blocking_http:
        raise ConfigError(f"--api {plan.endpoint.api} is not available in Locust mode (HTTP APIs only)")
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(endpoint_for(plan, console))
        endpoint = run_loop(prepared_endpoint(plan, endpoint, console))
        prepare_output_dir(plan.output_dir)
        job_dir = tempfile.mkdtemp(prefix="loadgen-locust-")
        job_file = Path(job_dir) / "job.json"
        job_file.touch(mode=0o600)
        job_file.write_text(json.dumps(job_for(plan, endpoint, load, plan.output_dir)), encoding="utf-8")
        if web_ui is not None:
            console.print(f"Locust web UI on {web_ui} (Ctrl-C to stop)", style="bold")
        process = subprocess.Popen(locust_command(endpoint.url), env={**os.environ, JOB_ENV: str(job_file)})
        if not worker:  # it writes telemetry.jsonl, which the Locust process reads into its summary
            stack.enter_context(telemetry_sidecar(plan, endpoint, console, process.pid))
        try:
            code = process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            code = process.wait()
        finally:
            job_file.unlink(missing_ok=True)
            os.rmdir(job_dir)
        summary_file = plan.output_dir / "summary.json"
        if worker or not summary_file.exists():
            return code
        summary = read_summary(summary_file)  # written by the Locust process, telemetry and all
    print_run(console, summary)
    if summary.telemetry:
        console.print(telemetry_table([summary]))
    console.print(f"Results in {plan.output_dir}", style="dim")
    return code
