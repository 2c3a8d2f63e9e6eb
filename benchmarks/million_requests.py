"""Memory: a 1,000,000-request run keeps the load generator's RSS flat, because records stream to
disk and histograms have a fixed size. Prints the client's RSS (from the process telemetry series)
at several points of the run, and the run's throughput.

    python benchmarks/million_requests.py [--requests 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from loadgen.cli import main as loadgen_main
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000)
    args = parser.parse_args()
    with SimProcess(SimSpec("zero-delay", SimOptions())) as sim, tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "out"
        code = loadgen_main([
            "run", "--quiet", "--endpoint", sim.url, "--concurrency", "64", "--requests", str(args.requests),
            "--max-tokens", "1", "--telemetry", "host", "--telemetry-interval", "1s", "--output", str(output),
        ])  # fmt: skip
        if code != 0:
            return code
        summary = json.loads((output / "summary.json").read_text())
        rss = [json.loads(line) for line in (output / "telemetry.jsonl").read_text().splitlines()]
        rss = [(s["t_ns"], s["rss_bytes"]) for s in rss if s["source"] == "process"]
        records_bytes = (output / "requests.jsonl").stat().st_size
    start = rss[0][0]
    rate = summary["throughput"]["requests_per_s"]
    print(f"{args.requests:,} requests in {summary['measured_window_s']:.0f} s ({rate:,.0f} req/s); "
          f"requests.jsonl {records_bytes / 2**20:,.0f} MiB")  # fmt: skip
    print(f"{'elapsed s':>10} {'client RSS MiB':>15}")
    for fraction in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0):
        t_ns, value = rss[min(len(rss) - 1, int(fraction * (len(rss) - 1)))]
        print(f"{(t_ns - start) / 1e9:>10.0f} {value / 2**20:>15.1f}")
    print(f"peak client RSS {max(v for _, v in rss) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
