"""A loadgen command in a process group of its own, signalled as a terminal or ``timeout`` signals
it: the whole group at once, once the command has reached a given point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

READY_WAIT_S = 120.0


@dataclass(frozen=True)
class Signalled:
    returncode: int
    printed: str
    left_running: list[str]  # the command lines of processes it started that outlived it


def loadgen_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadgen", *args]


def records_written(output: Path) -> bool:
    return any(path.stat().st_size for path in output.rglob("requests.jsonl"))


def signal_group_when(line: list[str], ready: Callable[[], bool], signum: int) -> Signalled:
    """Runs ``line``; once ``ready()``, sends ``signum`` to its whole process group and waits for it."""
    process = subprocess.Popen(line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        _wait_until_ready(process, ready)
        started = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signum)
        printed, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    _, alive = psutil.wait_procs(started, timeout=5)
    left = [" ".join(child.cmdline()) for child in alive if child.status() != psutil.STATUS_ZOMBIE]
    return Signalled(process.returncode, printed, left)


def started_until(line: list[str], ready: Callable[[], bool]) -> subprocess.Popen[bytes]:
    """Starts ``line`` in a process group of its own (its output discarded) and returns once
    ``ready()``; the caller ends it."""
    process = subprocess.Popen(line, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_until_ready(process, ready)
    except AssertionError:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return process


def _wait_until_ready(process: subprocess.Popen[Any], ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_WAIT_S
    while not ready():
        assert time.monotonic() < deadline and process.poll() is None, "the command never got there"
        time.sleep(0.1)
