"""Transport layer: batching reads when many streams are busy.

Each wake-up of the event loop costs a system call and a context switch (about 10 µs on a small
VM) on top of the read itself. With hundreds of streams, bytes arrive every few tens of µs and
the loop wakes for nearly every read. Because every read carries the kernel's arrival stamp,
reading a little later costs no accuracy, so while the read rate is high the loop pauses briefly
(``PAUSE_S``) once per pass, after the tasks its reads woke have run (their sends are not
delayed by the pause), and then takes everything that arrived in one wake-up.

Below ``MIN_READS_PER_S`` it does nothing: a pause would save little and add read lag. Without
kernel stamps it is never used (a late read would then be a late stamp).
"""

from __future__ import annotations

import asyncio
import time

PAUSE_S = 0.0005
MIN_READS_PER_S = 12_000
CHECK_INTERVAL_S = 0.1


class ReadBatcher:
    """Counts reads (``reads += 1`` by each connection) and paces the loop while they come fast."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pause_s: float = PAUSE_S,
                 min_reads_per_s: float = MIN_READS_PER_S) -> None:  # fmt: skip
        self._loop = loop
        self._pause_s = pause_s
        self._min_reads_per_s = min_reads_per_s
        self.reads = 0
        self.pauses = 0
        self._reads_at_check = 0
        self._checked_at = time.perf_counter()
        self._active = False
        self._timer: asyncio.TimerHandle | None = loop.call_later(CHECK_INTERVAL_S, self._check)

    def _check(self) -> None:
        now = time.perf_counter()
        rate = (self.reads - self._reads_at_check) / max(1e-9, now - self._checked_at)
        self._reads_at_check, self._checked_at = self.reads, now
        busy = rate >= self._min_reads_per_s
        if busy and not self._active:
            self._loop.call_soon(self._after_woken_tasks)
        self._active = busy
        self._timer = self._loop.call_later(CHECK_INTERVAL_S, self._check)

    def _after_woken_tasks(self) -> None:
        # scheduled behind the callbacks this pass's reads queued (their tasks' steps, and sends)
        if self._active:
            self._loop.call_soon(self._pause)

    def _pause(self) -> None:
        time.sleep(self._pause_s)
        self.pauses += 1
        self._loop.call_soon(self._after_woken_tasks)

    def stop(self) -> None:
        self._active = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
