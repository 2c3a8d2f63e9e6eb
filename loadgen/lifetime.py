"""Leaf: child processes that do not outlive loadgen.

The simulator, the telemetry sidecar, Locust and the worker processes run in sessions of their own
or beside loadgen; a signal to loadgen's group is loadgen's to handle, and loadgen stops them. If
loadgen itself is killed (SIGKILL, the OOM killer), Linux's parent-death signal
(``prctl(PR_SET_PDEATHSIG)``) tells each child to stop: SIGTERM, which each handles as a stop
(Locust and the workers write what they measured). Elsewhere the children end with their pipes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def ends_with_this_process(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess``/``asyncio`` that makes the child receive ``signum`` when
    this process ends; None where the platform has no such signal."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def in_the_child() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent ended before the signal was armed
            os.kill(os.getpid(), signum)

    return in_the_child
