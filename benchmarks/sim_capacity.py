"""Simulator capacity: does the built-in server keep its modelled timings at 256 streams?

Runs the ``llama2-7b-h100-b256`` profile (max batch 256) at 256 concurrent users and compares the
measured TPOT with the roofline model's step time for that batch, and reports the simulator
process's CPU use. If the simulator were the bottleneck, measured TPOT would exceed the model's.

    python benchmarks/sim_capacity.py [--users 256] [--tokens 128]
"""

from __future__ import annotations

import argparse
import sys
import urllib.request

import psutil
from harness import run_loadgen

from loadgen.hardware.roofline import RooflineProfile
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.profiles import PROFILES
from loadgen.sim.server import SimOptions

PROFILE = "llama2-7b-h100-b256"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    profile = PROFILES[PROFILE]
    assert isinstance(profile, RooflineProfile)
    prompt_words = 64
    with SimProcess(SimSpec(PROFILE, SimOptions())) as sim:
        server = psutil.Process(sim.pid)
        before = server.cpu_times()
        summary, _ = run_loadgen([
            "--endpoint", sim.url, "--concurrency", str(args.users), "--requests", str(args.users * 3),
            "--warmup", str(args.users), "--max-tokens", str(args.tokens),
            "--synthetic", f"input={prompt_words},output={args.tokens},count=64",
        ])  # fmt: skip
        after = server.cpu_times()
        with urllib.request.urlopen(sim.url + "/metrics", timeout=10) as response:
            metrics = {
                line.split("{")[0]: float(line.split()[-1])
                for line in response.read().decode().splitlines()
                if line and not line.startswith("#")
            }
    window = summary["measured_window_s"]
    server_cpu = (after.user + after.system) - (before.user + before.system)
    # the model's decode step with every user running, KV at mid-generation
    kv_tokens = args.users * (prompt_words + args.tokens // 2)
    model_step_ms = profile.step_time_s(0, args.users, kv_tokens) * 1000
    tpot = summary["latency_ms"]["tpot"]
    print(f"simulator {PROFILE}, {args.users} concurrent streams × {args.tokens} tokens")
    print(f"  model decode step at batch {args.users}: {model_step_ms:.2f} ms")
    print(f"  measured TPOT p50 {tpot['p50']:.2f} ms, p99 {tpot['p99']:.2f} ms (includes admitting new prompts)")
    print(
        f"  output {summary['throughput']['output_tokens_per_s']:,.0f} tok/s; "
        f"simulator CPU {server_cpu:.2f} s over the whole run (~{100 * server_cpu / window:.0f}% of a core "
        f"during the {window:.1f} s window); loadgen saturated: {summary['client']['saturated']}"
    )
    steps, modelled = metrics["loadgen_sim:steps_total"], metrics["loadgen_sim:modelled_step_seconds_total"]
    late = metrics["loadgen_sim:late_step_seconds_total"]
    print(
        f"  simulator schedule: {steps:.0f} steps, {modelled:.2f} s modelled, ran {late * 1000:.1f} ms behind "
        f"in total ({100 * late / modelled:.2f}% of modelled time)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
