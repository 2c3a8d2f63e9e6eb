"""Engine layer: does the requested load fit this process? Checked before anything starts.

Each connection holds a file descriptor, so a closed-loop level needs about one per user (an
open-loop level one per request in flight) plus a margin for files, the event loop and telemetry.
When the soft ``RLIMIT_NOFILE`` is lower, it is raised towards the hard limit; if that is not
enough, the run stops with one line instead of failing requests with "Too many open files". Each
user also costs memory (task, connection, buffers, record): a load whose estimate passes half of
the available memory is refused the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import psutil

from loadgen.config import LoadConfig, LoadMode
from loadgen.errors import ConfigError

FILES_SPARE = 64
BYTES_PER_USER = 64 * 1024  # generous: a streamed request's task, connection, parser, decoder and record

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]  # a platform without it: the limit is left as it is


OPEN_LOOP_INFLIGHT = 10_000  # open loop without --max-inflight


def concurrent_requests(load: LoadConfig) -> int:
    """The most requests one level can have in flight: closed loop, its users; open loop,
    ``--max-inflight``, else ``open_loop_inflight()``. Beyond it an arrival waits for a slot and
    the wait counts as latency (send lag): a rate the client cannot hold shows in the figures and
    the verdict, never as memory that grows until the machine gives out."""
    if load.mode is LoadMode.CLOSED:
        peak = max((round(stage.target) for stage in load.stages), default=0)
        return max(load.concurrency, peak)
    return load.max_inflight or open_loop_inflight()


def open_loop_inflight() -> int:
    """``OPEN_LOOP_INFLIGHT``, or fewer where this machine's file limit or memory hold fewer."""
    ceiling = OPEN_LOOP_INFLIGHT
    if resource is not None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY:
            ceiling = min(ceiling, hard - FILES_SPARE)
    memory = int(psutil.virtual_memory().available / 2 / BYTES_PER_USER)
    return max(1, min(ceiling, memory))


def check_load_fits(loads: Iterable[LoadConfig], workers: int = 1) -> None:
    """Raise ``ConfigError`` when the largest level cannot run here; may raise the soft file limit."""
    known = [concurrent_requests(load) for load in loads]
    if not known:
        return
    users = max(known)
    per_process = math.ceil(users / max(1, workers))
    _ensure_files(per_process + FILES_SPARE, users)
    available = psutil.virtual_memory().available
    if users * BYTES_PER_USER > available / 2:
        raise ConfigError(
            f"{users:,} concurrent requests need about {users * BYTES_PER_USER / 2**30:.1f} GiB here, over half of "
            f"the {available / 2**30:.1f} GiB available: use fewer users or spread them over machines (loadgen locust)"
        )


def _ensure_files(needed: int, users: int) -> None:
    if resource is None:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft < needed:
        raise ConfigError(
            f"{users:,} concurrent requests need about {needed:,} open files per process, but this process may "
            f"open {soft:,} (ulimit -n; hard limit {hard:,}): raise the limit, use fewer users or --workers"
        )
