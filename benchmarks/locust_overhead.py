"""Locust mode against the asyncio engine: client CPU per streamed chunk, and accuracy, on one server.

A simulator with known timings (first token after 20 ms, then one token every 2 ms, 256 tokens)
serves both: ``loadgen run`` (asyncio, this process) and ``loadgen locust --headless`` (gevent,
a child process) with the same number of users. Printed per mode: requests, chunks, client CPU
seconds, chunks per CPU-second, and TTFT/ITL medians beside the server's true 20 ms / 2 ms.

    python benchmarks/locust_overhead.py [--users 32] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import run_loadgen

from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions

TOKENS, TTFT_MS, ITL_MS = 256, 20, 2


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def asyncio_mode(url: str, users: int, seconds: float) -> dict[str, float]:
    before = cpu_seconds(resource.RUSAGE_SELF)
    summary, _ = run_loadgen(["--endpoint", url, "--concurrency", str(users), "--duration", f"{seconds}s",
                              "--warmup", "0", "--max-tokens", str(TOKENS)])  # fmt: skip
    return _figures(summary, cpu_seconds(resource.RUSAGE_SELF) - before)


def locust_mode(url: str, users: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        before = cpu_seconds(resource.RUSAGE_CHILDREN)  # the launcher and Locust, once both have exited
        subprocess.run([sys.executable, "-m", "loadgen", "locust", "--headless", "--endpoint", url, "--users",
                        str(users), "--run-time", f"{seconds:g}s", "--max-tokens", str(TOKENS), "--output",
                        directory], check=True, capture_output=True)  # fmt: skip
        cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - before
        summary = json.loads((Path(directory) / "summary.json").read_text())
    return _figures(summary, cpu)


def _figures(summary: dict, cpu: float) -> dict[str, float]:  # type: ignore[type-arg]
    chunks = summary["latency_ms"]["itl_chunk"]["count"] + summary["requests"]["completed"]
    return {"requests": summary["requests"]["completed"], "chunks": chunks, "cpu_s": cpu,
            "chunks_per_cpu_s": chunks / cpu, "ttft_p50": summary["latency_ms"]["ttft"]["p50"],
            "itl_p50": summary["latency_ms"]["itl"]["p50"], "itl_p99": summary["latency_ms"]["itl"]["p99"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"{args.users} users, {args.seconds:g} s each; server: TTFT {TTFT_MS} ms, ITL {ITL_MS} ms, {TOKENS} tokens")
    print(f"{'mode':<8} {'requests':>8} {'chunks':>8} {'cpu s':>6} {'chunks/cpu-s':>12} {'TTFT p50':>9} "
          f"{'ITL p50':>8} {'ITL p99':>8}")  # fmt: skip
    with SimProcess(SimSpec(f"fixed:{TTFT_MS},{ITL_MS}", SimOptions())) as sim:
        for name, mode in (("asyncio", asyncio_mode), ("locust", locust_mode)):
            started = time.monotonic()
            result = mode(sim.url, args.users, args.seconds)
            print(f"{name:<8} {result['requests']:>8.0f} {result['chunks']:>8.0f} {result['cpu_s']:>6.2f} "
                  f"{result['chunks_per_cpu_s']:>12,.0f} {result['ttft_p50']:>9.2f} {result['itl_p50']:>8.3f} "
                  f"{result['itl_p99']:>8.3f}   ({time.monotonic() - started:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
