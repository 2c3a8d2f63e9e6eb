"""OTLP cost: what receiving and joining the server's spans (``--server-timings otlp``) costs the
client, and whether it disturbs its measurements.

The simulator (``llama2-7b-h100``, exporting one span per request to loadgen's receiver every
100 ms, as vLLM's batch exporter does with ``OTEL_BSP_SCHEDULE_DELAY=100``) serves the same level
with ``--server-timings off``, ``auto`` and ``otlp``, in turn, ``--runs`` times. Printed per mode,
medians over the runs: client CPU (% of one core over the level), p99 send lag, p99 read lag,
TTFT p50, and, for otlp, the join and the wait for the last spans.

    python benchmarks/otlp_cost.py [--runs 3] [--users 64] [--requests 1024]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys

from harness import run_loadgen

from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--requests", type=int, default=1024)
    args = parser.parse_args()
    port = free_port()
    figures: dict[str, list[tuple[float, float, float, float, str]]] = {"off": [], "auto": [], "otlp": []}
    options = SimOptions(otlp_endpoint=f"http://127.0.0.1:{port}/v1/traces")
    with SimProcess(SimSpec("llama2-7b-h100", options)) as sim:
        for _ in range(args.runs):
            for mode in figures:
                extra = ["--otlp-listen", f"127.0.0.1:{port}"] if mode == "otlp" else []
                summary, _ = run_loadgen([
                    "--endpoint", sim.url, "--concurrency", str(args.users), "--requests", str(args.requests),
                    "--max-tokens", "64", "--server-timings", mode, *extra,
                ])  # fmt: skip
                latency = summary["latency_ms"]
                account = summary.get("server_timings") or {}
                join = account.get("join") or {}
                said = f"{join['joined']}/{join['completed']} joined, waited {join['waited_s']:.2f} s" if join else ""
                figures[mode].append((summary["client"]["cpu_percent"], latency["schedule_lag"]["p99"],
                                      latency["read_lag"]["p99"], latency["ttft"]["p50"], said))  # fmt: skip
    print(f"OTLP cost: {args.users} users, {args.requests} requests × 64 tokens against llama2-7b-h100, "
          f"medians of {args.runs} runs (modes in turn)")  # fmt: skip
    print(f"{'mode':<6} {'client CPU %':>12} {'send lag p99 ms':>15} {'read lag p99 ms':>15} {'TTFT p50 ms':>11}  join")
    for mode, runs in figures.items():
        medians = [statistics.median(run[k] for run in runs) for k in range(4)]
        print(f"{mode:<6} {medians[0]:>12.1f} {medians[1]:>15.3f} {medians[2]:>15.3f} {medians[3]:>11.2f}  "
              f"{'; '.join(run[4] for run in runs)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
