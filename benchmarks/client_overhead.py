"""Capacity benchmark: how many streamed chunks can loadgen take per CPU-second?

The simulator runs in its own process; only loadgen's CPU (this process, plus its worker
processes with ``--workers``) is counted. Printed per case:

- whole run: content chunks received / loadgen CPU-seconds for the whole ``loadgen run``
  (start-up, preflight, connecting, the load and writing the results);
- steady: chunks whose arrival stamps fall in the middle half of the load, over the CPU spent in
  that same span (sampled every 50 ms);
- reads: distinct arrival stamps (chunks that came in one read share one), to show how many
  chunks each read carried.

- server's count: chunks the server wrote (its own log), the throughput truth; it must equal the
  chunks received.
- floor (C cases): the same load read by ``floor_client.c``, a C client that does only what every
  streaming client must (epoll, ``recvmsg`` with the kernel's arrival stamp, finding the chunks and
  each response's end) and pauses after each pass as loadgen's read batching does: the least CPU
  per chunk any client can spend on this machine, run right after each loadgen run; "of floor" is
  loadgen's steady figure over it.

Cases, by default servers that write and flush every chunk on its own, as vLLM, TGI and llama.cpp
do ("flush per chunk"): the lean simulator (Python, one ``send`` per chunk) flat out at 64 and 256
streams, and the C server (``flush_server.c``) flat out and paced so that each read carries about
one token (the per-read cost, which is what a real server costs the client). ``--bulk`` adds the
simulator (aiohttp), which writes many chunks per TCP segment when it runs flat out: zero-delay at
64 streams with one and two worker processes, and 256 streams paced at one token per read.

- read syscalls per chunk: ``recvmsg`` calls (one per read) over chunks, the inverse of chunks per
  read; the floor client's are printed beside its figure.

    python benchmarks/client_overhead.py [--runs 5] [--requests-per-user 4] [--users 64] [--api tgi] [--bulk]
    python benchmarks/client_overhead.py --profile 64   # cProfile of the client, the C server paced
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
from harness import run_loadgen

from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions
from loadgen.transport.batching import PAUSE_S

CASES = (  # (label, simulator profile, users, tokens, workers)
    ("zero-delay", "zero-delay", 64, 512, 1),
    ("zero-delay", "zero-delay", 64, 512, 2),
    ("1 token per read", "fixed:0,10", 256, 128, 1),
    ("1 token per read", "fixed:0,10", 256, 128, 2),
    ("flush per chunk", "zero-delay", 64, 512, 1),
    ("flush per chunk", "zero-delay", 256, 128, 1),
    # the C server (flush_server.c): flat out, and paced so that each read carries one token
    ("flush per chunk", "c:0", 64, 512, 1),
    ("flush per chunk", "c:2000", 64, 512, 1),
    ("flush per chunk", "c:8000", 256, 128, 1),
)
FLUSHING = "flush per chunk"  # the lean simulator (one send per chunk), or c:INTERVAL_US (flush_server.c)


class CpuSampler(threading.Thread):
    """(monotonic ns, CPU-seconds of this process and its children but the simulator) every 50 ms."""

    def __init__(self, exclude_pid: int | None, workers: int) -> None:
        super().__init__(daemon=True)
        self._exclude = exclude_pid
        self._expected_children = workers if workers > 1 else 0
        self._me = psutil.Process()
        self._children: dict[int, psutil.Process] = {}
        self.samples: list[tuple[int, float]] = []
        self._stop_event = threading.Event()

    def cpu_seconds(self) -> float:
        total = time.process_time()
        # listing children reads all of /proc, in this (loadgen's) process: only until the workers are found
        if len(self._children) < self._expected_children:
            for child in self._me.children(recursive=True):
                if child.pid != self._exclude:
                    self._children.setdefault(child.pid, child)
        for pid, child in list(self._children.items()):
            try:
                times = child.cpu_times()
            except psutil.Error:
                del self._children[pid]
                continue
            total += times.user + times.system
        return total

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.perf_counter_ns(), self.cpu_seconds()))
            self._stop_event.wait(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def cpu_between(self, start_ns: int, end_ns: int) -> float:
        def at(t_ns: int) -> float:
            for (t0, c0), (t1, c1) in zip(self.samples, self.samples[1:], strict=False):
                if t0 <= t_ns <= t1:
                    return c0 + (c1 - c0) * (t_ns - t0) / max(1, t1 - t0)
            raise ValueError("time outside the sampled span")

        return at(end_ns) - at(start_ns)


def rusage_cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def serving(profile: str, flushing: bool) -> Iterator[tuple[str, int | None, Callable[[], int | None]]]:
    """(URL, server pid, how many content chunks the server wrote): the simulator, or with
    ``c:INTERVAL_US`` the C server (``flush_server.c``, compiled here with gcc)."""
    if profile.startswith("c:"):
        server = subprocess.Popen([str(compiled("flush_server")), "0", profile[2:]], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            url = f"http://127.0.0.1:{server.stdout.readline().split()[1]}"
            yield url, server.pid, lambda: int(json.load(urllib.request.urlopen(f"{url}/count", timeout=10))["chunks"])
        finally:
            server.terminate()
            server.wait()
        return
    with SimProcess(SimSpec(profile, SimOptions(lean=flushing, keep_log=flushing))) as sim:
        yield sim.url, sim.pid, lambda: sum(len(e["chunk_ns"]) for e in server_log(sim.url)) if flushing else None


def compiled(name: str) -> Path:
    """``benchmarks/NAME.c`` compiled with gcc -O2 (once per benchmark process)."""
    binary = Path(tempfile.gettempdir()) / f"loadgen-bench-{os.getpid()}-{name}"
    if not binary.exists():
        subprocess.run(["gcc", "-O2", "-o", str(binary), str(Path(__file__).with_name(f"{name}.c"))], check=True)
    return binary


def measure_floor(profile: str, users: int, tokens: int, requests_per_user: int,
                  api: str = "openai-completions") -> dict[str, float]:  # fmt: skip
    """The same load read by ``floor_client.c`` (epoll, ``recvmsg`` with the kernel stamp, chunks
    counted in the bytes, nothing else), pausing after each pass as loadgen's read batching does:
    the least CPU per chunk any client can spend here, measured beside loadgen's figure."""
    with serving(profile, flushing=True) as (url, _, server_count):
        pause_us = round(PAUSE_S * 1e6)
        reply = subprocess.run(
            [str(compiled("floor_client")), url.rsplit(":", 1)[1], str(users), str(requests_per_user), str(tokens),
             str(pause_us), api], check=True, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        figures = json.loads(reply.stdout)
        written = server_count()
    if figures["chunks"] != written:
        raise SystemExit(f"floor client counted {figures['chunks']} chunks, the server wrote {written}")
    return {"steady": figures["steady"], "chunks": figures["chunks"], "reads": figures["reads"]}


def measure(profile: str, users: int, tokens: int, workers: int, requests_per_user: int,
            flushing: bool = False, api: str = "openai-completions") -> dict[str, float]:  # fmt: skip
    with serving(profile, flushing) as (url, server_pid, server_count):
        sampler = CpuSampler(server_pid, workers)
        sampler.start()
        cpu_before = rusage_cpu()
        summary, records = run_loadgen([
            "--endpoint", url, "--api", api, "--concurrency", str(users),
            "--requests", str(users * requests_per_user), "--warmup", "0", "--max-tokens", str(tokens),
            "--workers", str(workers),
        ])  # fmt: skip
        whole_cpu = rusage_cpu() - cpu_before
        sampler.stop()
        written = server_count()
    origin = summary["clock"]["monotonic_start_ns"]
    stamps = sorted(origin + t for record in records for t in record["chunk_ns"])
    first, last = stamps[0], stamps[-1]
    start, end = first + (last - first) // 4, last - (last - first) // 4
    steady_chunks = sum(1 for t in stamps if start <= t <= end)
    reads = sum(len(set(record["chunk_ns"])) for record in records)
    return {
        "chunks": len(stamps),
        "reads": reads,
        "whole": len(stamps) / whole_cpu,
        "steady": steady_chunks / sampler.cpu_between(start, end),
        "wall": len(stamps) / ((last - first) / 1e9),
        "failed": summary["requests"]["failed"],
        "server_chunks": float("nan") if written is None else written,
    }


def server_log(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{url}/sim/log", timeout=60) as reply:
        return json.load(reply)  # type: ignore[no-any-return]


def profile_client(users: int) -> None:
    """Where the client's CPU goes per chunk against the C server, each stream paced so that the
    whole load offers about 32,000 chunks a second (one token per read; cProfile's own overhead
    inflates every figure: the shares are what to read)."""
    with serving(f"c:{max(2000, users * 31)}", flushing=True) as (url, _, _):
        profiler = cProfile.Profile()
        profiler.enable()
        run_loadgen(["--endpoint", url, "--api", "openai-completions", "--concurrency", str(users),
                     "--requests", str(2 * users), "--warmup", "0", "--max-tokens", "512"])  # fmt: skip
        profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per case; medians are printed")
    parser.add_argument("--requests-per-user", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--users", type=int, action="append", help="only the cases with this many users")
    parser.add_argument("--bulk", action="store_true", help="also the cases of the bulk-writing simulator")
    parser.add_argument("--flush-per-chunk", action="store_true", help="(the default: kept for old command lines)")
    parser.add_argument(
        "--api",
        default="openai-completions",
        choices=("openai-completions", "openai-chat", "tgi"),
        help="the stream's shape (the simulator's and the C server's), and loadgen's --api",
    )
    parser.add_argument("--profile", type=int, metavar="USERS", help="profile the client instead (the C server, paced)")
    args = parser.parse_args()
    if args.profile:
        profile_client(args.profile)
        return 0
    print(f"capacity: chunks per loadgen CPU-second, --api {args.api}, medians of {args.runs} runs (pid {os.getpid()})")
    print(f"{'server':<17} {'profile':>9} {'users':>5} {'tokens':>6} {'workers':>7} {'chunks':>8} {'reads/chunk':>11} "
          f"{'whole run':>10} {'steady':>9} {'chunks/s':>9} {'server wrote':>12} {'floor (C)':>10} "
          f"{'of floor':>8}")  # fmt: skip
    every = []
    for label, profile, users, tokens, workers in CASES:
        if (args.users and users not in args.users) or (not args.bulk and label != FLUSHING):
            continue
        if args.api == "tgi" and label == FLUSHING and not profile.startswith("c:"):
            continue  # the lean simulator speaks OpenAI only
        load = os.getloadavg()
        runs, floors = [], []
        for _ in range(args.runs):
            runs.append(measure(profile, users, tokens, workers, args.requests_per_user, label == FLUSHING, args.api))
            if profile.startswith("c:") and workers == 1:  # the floor of the same load, right after it
                floors.append(measure_floor(profile, users, tokens, args.requests_per_user, args.api))
        every.append({"case": [label, profile, users, tokens, workers], "load_average": load, "runs": runs,
                      "floor_runs": floors})  # fmt: skip

        def median(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(run[key] for run in runs)

        floor = statistics.median(run["steady"] for run in floors) if floors else float("nan")
        print(
            f"{label:<17} {profile:>9} {users:>5} {tokens:>6} {workers:>7} {median('chunks'):>8,.0f} "
            f"{median('reads') / median('chunks'):>11.2f} {median('whole'):>10,.0f} {median('steady'):>9,.0f} "
            f"{median('wall'):>9,.0f} {median('server_chunks'):>12,.0f} "
            + (f"{floor:>10,.0f} {median('steady') / floor:>8.0%}" if floors else f"{'':>10} {'':>8}")
            + (f"  ({median('failed'):.0f} failed)" if median("failed") else ""),
            flush=True,
        )
        steady_runs = ", ".join(f"{run['steady']:,.0f}" for run in runs)
        floor_runs = ", ".join(f"{run['steady']:,.0f} at {run['reads'] / run['chunks']:.2f} read syscalls/chunk"
                               for run in floors)  # fmt: skip
        print(f"    each run, steady: {steady_runs}" + (f"; floor: {floor_runs}" if floors else "")
              + f"; load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(every, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
