"""Client overhead benchmark: how many streamed chunks can loadgen take per CPU-second?

A zero-delay simulator process streams 512 tokens per request as fast as it can write; loadgen
reads them at 64 and 256 concurrent streams. Printed per level: content chunks received per
second of wall time, and per CPU-second of the loadgen process (user + system time of this
process only; the simulator is a separate process). Target: at least 30,000 chunks per CPU-second.

    python benchmarks/client_overhead.py [--levels 64,256] [--requests-per-user 4]
"""

from __future__ import annotations

import argparse
import resource
import sys

from harness import run_loadgen

from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions

TOKENS = 512


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_level(url: str, users: int, requests_per_user: int) -> dict[str, float]:
    cpu_before = cpu_seconds()
    summary, records = run_loadgen([
        "--endpoint", url, "--concurrency", str(users), "--requests", str(users * requests_per_user),
        "--warmup", "0", "--max-tokens", str(TOKENS),
    ])  # fmt: skip
    cpu = cpu_seconds() - cpu_before
    reads = sum(len(set(record["chunk_ns"])) for record in records)  # chunks sharing a stamp came in one read
    chunks = summary["latency_ms"]["itl_chunk"]["count"] + summary["requests"]["completed"]
    window = summary["measured_window_s"]
    return {"chunks": chunks, "reads": reads, "cpu_s": cpu, "chunks_per_s": chunks / window,
            "chunks_per_cpu_s": chunks / cpu}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="64,256")
    parser.add_argument("--requests-per-user", type=int, default=4)
    parser.add_argument("--paced-itl-ms", type=float, default=2.0, help="token interval of the paced level")
    args = parser.parse_args()
    print(f"client overhead: {TOKENS} tokens per request")
    print(
        f"{'server':<18} {'streams':>7} {'chunks':>9} {'reads':>9} {'cpu s':>6} {'chunks/s':>9} "
        f"{'chunks/cpu-s':>12} {'reads/cpu-s':>11}"
    )
    cases = [("zero-delay", int(level)) for level in args.levels.split(",")]
    cases.append((f"fixed:0,{args.paced_itl_ms:g}", 64))
    for profile, users in cases:
        with SimProcess(SimSpec(profile, SimOptions())) as sim:
            result = run_level(sim.url, users, args.requests_per_user)
        name = "as fast as it can" if profile == "zero-delay" else f"{args.paced_itl_ms:g} ms per token"
        print(
            f"{name:<18} {users:>7} {result['chunks']:>9,} {result['reads']:>9,} {result['cpu_s']:>6.2f} "
            f"{result['chunks_per_s']:>9,.0f} {result['chunks_per_cpu_s']:>12,.0f} "
            f"{result['reads'] / result['cpu_s']:>11,.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
