"""Telemetry cost: what sampling host, process and server metrics costs, and whether it disturbs
the client's measurements.

The same load (simulator ``llama2-7b-h100``, 32 users, 128 tokens) runs without telemetry and with
``--telemetry host,server`` at 250 ms and 100 ms. Printed: the sidecar process's CPU (share of one
core over the level), the client's CPU, its p99 schedule lag and TTFT p50.

    python benchmarks/telemetry_cost.py
"""

from __future__ import annotations

import sys

from harness import run_loadgen

from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions


def main() -> int:
    print("telemetry cost: 32 users, 256 requests × 128 tokens against llama2-7b-h100")
    print(f"{'telemetry':<28} {'sidecar CPU %':>13} {'client CPU %':>12} {'lag p99 ms':>10} {'TTFT p50 ms':>11}")
    with SimProcess(SimSpec("llama2-7b-h100", SimOptions())) as sim:
        for label, extra in (
            ("off", []),
            ("host,server every 250 ms", ["--telemetry", "host,server", "--telemetry-interval", "250ms"]),
            ("host,server every 100 ms", ["--telemetry", "host,server", "--telemetry-interval", "100ms"]),
            ("off (again: run-to-run spread)", []),
        ):
            summary, _ = run_loadgen([
                "--endpoint", sim.url, "--concurrency", "32", "--requests", "256", "--warmup", "32",
                "--max-tokens", "128", *extra,
            ])  # fmt: skip
            sampler = (summary.get("telemetry") or {}).get("sampler") or {}
            sidecar = sampler.get("sidecar_cpu_percent_of_core")
            print(f"{label:<28} {'–' if sidecar is None else f'{sidecar:.2f}':>13} "
                  f"{summary['client']['cpu_percent']:>12.1f} {summary['latency_ms']['schedule_lag']['p99']:>10.3f} "
                  f"{summary['latency_ms']['ttft']['p50']:>11.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
