"""Transport layer: receive times from the kernel, on the clock loadgen measures with.

With ``SO_TIMESTAMPNS`` set on a socket, Linux stamps each received segment when it reaches the
network stack and hands that time (``CLOCK_REALTIME``) to ``recvmsg`` as a control message. A
chunk's time is then when its bytes arrived, however late the event loop gets to read them.
loadgen's records are on ``CLOCK_MONOTONIC`` (``perf_counter_ns``), so each stamp is shifted by
the realtime − monotonic offset, measured by bracketing one realtime read between two monotonic
ones and refreshed every second (a wall-clock step moves the offset; slewing moves both clocks).

Where the platform has no kernel stamps (or a segment comes without one), the user-space time
of the read is used instead, and the counts say how many reads were stamped each way.
"""

from __future__ import annotations

import enum
import socket
import struct
import sys
import time

SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
CONTROL_BUFFER_BYTES = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_unpack_timespec = struct.Struct("@qq").unpack_from
CALIBRATION_PERIOD_NS = 1_000_000_000
CALIBRATION_TRIES = 5


class StampSource(str, enum.Enum):
    """Where a received chunk's time came from."""

    KERNEL = "kernel SO_TIMESTAMPNS (CLOCK_REALTIME at arrival, shifted to CLOCK_MONOTONIC)"
    USER = "user space: perf_counter_ns when the event loop read the bytes"


def realtime_offset_ns() -> int:
    """``CLOCK_REALTIME − CLOCK_MONOTONIC`` in ns, from the tightest of a few bracketed reads."""
    best_width, best_offset = None, 0
    for _ in range(CALIBRATION_TRIES):
        before = time.perf_counter_ns()
        realtime = time.clock_gettime_ns(time.CLOCK_REALTIME)
        after = time.perf_counter_ns()
        if best_width is None or after - before < best_width:
            best_width, best_offset = after - before, realtime - (before + after) // 2
    return best_offset


def kernel_stamps_available() -> bool:
    """True when sockets here can carry receive stamps (Linux; needs ``perf_counter_ns`` to be
    ``CLOCK_MONOTONIC``, which it is on Linux)."""
    if SO_TIMESTAMPNS is None or not hasattr(socket.socket, "recvmsg") or not CONTROL_BUFFER_BYTES:
        return False
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    finally:
        probe.close()
    return True


class ArrivalStamper:
    """Turns a read's control messages into its arrival time on the monotonic clock.

    ``stamp(ancillary, read_ns)`` returns the kernel's arrival time when the read carried one,
    else ``read_ns``; it never returns a time later than ``read_ns`` (a stamp that would be, after
    a wall-clock step, is counted in ``anomalies`` and replaced)."""

    __slots__ = ("_next_calibration_ns", "_offset_ns", "anomalies", "kernel_reads", "user_reads")

    def __init__(self) -> None:
        self._offset_ns = realtime_offset_ns()
        self._next_calibration_ns = time.perf_counter_ns() + CALIBRATION_PERIOD_NS
        self.kernel_reads = 0
        self.user_reads = 0
        self.anomalies = 0

    def stamp(self, ancillary: list[tuple[int, int, bytes]], read_ns: int) -> int:
        if not ancillary:
            self.user_reads += 1
            return read_ns
        if read_ns >= self._next_calibration_ns:
            self._offset_ns = realtime_offset_ns()
            self._next_calibration_ns = read_ns + CALIBRATION_PERIOD_NS
        seconds, nanoseconds = _unpack_timespec(ancillary[-1][2])
        arrival_ns: int = seconds * 1_000_000_000 + nanoseconds - self._offset_ns
        if arrival_ns > read_ns:
            self.anomalies += 1
            self.user_reads += 1
            return read_ns
        self.kernel_reads += 1
        return arrival_ns
