"""Locust mode: start Locust with loadgen's users on a resolved plan (no argparse, no Locust here).

``launch`` does what ``loadgen run`` does before the load (the simulator when no endpoint is
given, the preflight request), writes the plan as a job file only this user can read, and starts
Locust on ``locustfile.py`` in a child process (Locust patches the interpreter for gevent, so it
never runs inside this one), with the telemetry sidecar beside it.

Signals: Locust runs in a session of its own, so Ctrl-C in a terminal (SIGINT to the whole
process group) and SIGTERM reach this process only. It marks the test interrupted (a file beside
the job, which the Locust process reads when it writes ``summary.json``) and tells Locust to stop
(SIGTERM: Locust stops the test, writes its results and quits); a second signal kills Locust's
process group. Locust's own exit code is not the command's: that is ``loadgen.run.outcome``'s
decision on the summary Locust wrote, as for every other command.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

from loadgen.config import EndpointConfig, LoadConfig
from loadgen.errors import ConfigError
from loadgen.eventloop import run_loop
from loadgen.lifetime import ends_with_this_process
from loadgen.metrics.results import read_summary
from loadgen.protocols.apis import api_spec
from loadgen.report.files import prepare_output_dir
from loadgen.run.events import Finished, RunEvents
from loadgen.run.outcome import ExitCode, decide
from loadgen.run.target import prepare_target, simulated_or_given, telemetry_sidecar
from loadgen.run.workers import job_for
from loadgen.scenario.plan import Plan

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
JOB_ENV = "LOADGEN_LOCUST_JOB"  # a JSON file: the job the Locust processes read (loadgen.locust.users)
INTERRUPTED_MARK = "interrupted"  # a file beside the job: the test was stopped by a signal


def interrupted_mark(job_file: Path) -> Path:
    return job_file.with_name(INTERRUPTED_MARK)


def launch(plan: Plan, load: LoadConfig, locust_command: Callable[[str], list[str]], events: RunEvents, *,
           worker: bool = False, web_ui: str | None = None) -> int:  # fmt: skip
    """Runs Locust (``locust_command(endpoint_url)``) on ``plan`` at ``load``; returns the exit code.
    A worker only sends load: the master writes the results and runs the sidecar."""
    if not api_spec(plan.endpoint.api).blocking_http:
        raise ConfigError(f"--api {plan.endpoint.api} is not available in Locust mode (HTTP APIs only)")
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(simulated_or_given(plan, events))
        endpoint = run_loop(prepare_target(plan, endpoint, events, asyncio.Event())).endpoint
        stack.enter_context(prepare_output_dir(plan.output_dir))
        job_file = stack.enter_context(_job_file(plan, endpoint, load))
        if web_ui is not None:
            events.say(f"Locust web UI on {web_ui} (Ctrl-C to stop)")
        environment = {**os.environ, JOB_ENV: str(job_file)}
        process = subprocess.Popen(locust_command(endpoint.url), env=environment, start_new_session=True,
                                   preexec_fn=ends_with_this_process(_parent_death(worker)))  # fmt: skip
        stack.callback(_kill_group, process)  # never left running, whatever happens here
        if not worker:  # it writes telemetry.jsonl, which the Locust process reads into its summary
            stack.enter_context(telemetry_sidecar(plan, endpoint.url, events, process.pid))
        interrupted, code = _wait(process, interrupted_mark(job_file))
    summary_file = plan.output_dir / "summary.json"
    if worker or not summary_file.exists():
        return ExitCode.INTERRUPTED if interrupted else code
    summary = read_summary(summary_file)  # written once by the Locust process, judged, telemetry and all
    outcome = decide([summary], interrupted=interrupted)
    events.level_done(summary.label, summary, False)
    events.finished(Finished((summary,), outcome, plan.output_dir, plan.slo, thresholds_asked=bool(plan.fail_on)))
    return outcome.code


def _parent_death(worker: bool) -> int:
    """What Locust gets if this process is killed: a master or a local test stops and writes what
    it measured (SIGTERM); a worker dies as its launcher did (SIGKILL), so its master sees a lost
    worker, not one that left cleanly."""
    return signal.SIGKILL if worker else signal.SIGTERM


@contextlib.contextmanager
def _job_file(plan: Plan, endpoint: EndpointConfig, load: LoadConfig) -> Iterator[Path]:
    """The job, in a directory only this user can read, removed at the end (it may hold keys)."""
    job_dir = tempfile.mkdtemp(prefix="loadgen-locust-")
    job_file = Path(job_dir) / "job.json"
    try:
        job_file.touch(mode=0o600)
        job_file.write_text(json.dumps(job_for(plan, endpoint, load, plan.output_dir)), encoding="utf-8")
        yield job_file
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)


def _wait(process: subprocess.Popen[bytes], mark: Path) -> tuple[bool, int]:
    """Locust's exit code, and whether a signal stopped it: the first SIGINT/SIGTERM asks Locust to
    stop (SIGTERM), a second kills its process group."""
    signals: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)
        if len(signals) == 1:
            mark.touch()
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        else:
            _kill_group(process)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return bool(signals), code


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Locust and any process it started (``--processes``), killed if still running."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
