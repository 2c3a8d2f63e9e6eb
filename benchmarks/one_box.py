"""One machine at full speed: worker scaling and open-loop accuracy.

- Scaling: 64 users × 512-token streams from a zero-delay simulator, with 1 and 2 worker
  processes. On this 2-core machine the simulator runs on the same cores (nothing else is
  available), so 2 workers cannot reach 2×: the figure says how much of the second core the client
  gets while the server uses the rest.
- Open-loop accuracy: 2,000 req/s for 10 s (constant and Poisson arrivals, 1-token answers):
  the achieved rate against the schedule, and the p99 schedule lag, with 1 and 2 workers.

    python benchmarks/one_box.py
"""

from __future__ import annotations

import sys

from loadgen.run.selftest import _run, streaming
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions


def main() -> int:
    with SimProcess(SimSpec("zero-delay", SimOptions())) as sim:
        print("scaling: 64 users × 512-token streams")
        print(f"{'workers':>8} {'chunks/s':>10} {'client CPU % per worker':>25}")
        results = [streaming(sim.url, workers) for workers in (1, 2)]
        for result in results:
            cpu = ", ".join("–" if c is None else f"{c:.0f}" for c in result.client_cpu_percent)
            print(f"{result.workers:>8} {result.chunks_per_s:>10,.0f} {cpu:>25}")
        print(f"ratio 2 workers / 1 worker: {results[1].chunks_per_s / results[0].chunks_per_s:.2f}")
        print("\nopen loop at 2,000 req/s for 10 s, 1-token answers")
        print(f"{'arrival':>9} {'workers':>8} {'sent':>7} {'achieved req/s':>15} {'lag p50 ms':>11} {'lag p99 ms':>11}")
        for arrival in ("constant", "poisson"):
            for workers in (1, 2):
                args = ["--rate", "2000", "--arrival", arrival, "--duration", "10s", "--max-tokens", "1",
                        "--max-inflight", "2000", "--workers", str(workers)]  # fmt: skip
                summary = _run(sim.url, args)
                sent = summary["requests"]["completed"] + summary["requests"]["failed"]
                lag = summary["latency_ms"]["schedule_lag"]
                achieved = sent / summary["measured_window_s"]
                print(
                    f"{arrival:>9} {workers:>8} {sent:>7,} {achieved:>15,.1f} {lag['p50']:>11.3f} {lag['p99']:>11.3f}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
