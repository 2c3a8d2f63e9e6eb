"""Memory: a 1,000,000-request run keeps the load generator's RSS flat, because records stream to
disk, histograms have a fixed size and every closed interval's histograms are freed at once.
Prints the client's RSS (from the sidecar's process series) after every 100,000 requests, and how
far it rose after the first 100,000 (target: within 10 MiB).

    python benchmarks/million_requests.py [--requests 1000000] [--step 100000]
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
import tempfile
from pathlib import Path

import orjson

from loadgen.cli import main as loadgen_main
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--step", type=int, default=100_000)
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
        samples = [json.loads(line) for line in (output / "telemetry.jsonl").read_text().splitlines()]
        rss = sorted((s["t_ns"], s["rss_bytes"]) for s in samples if s["source"] == "process")
        with (output / "requests.jsonl").open("rb") as records:
            ends = sorted(orjson.loads(line)["end_ns"] or 0 for line in records)
        records_bytes = (output / "requests.jsonl").stat().st_size
    origin = summary["clock"]["monotonic_start_ns"]
    rate = summary["throughput"]["requests_per_s"]
    print(
        f"{args.requests:,} requests in {summary['measured_window_s']:.0f} s ({rate:,.0f} req/s); "
        f"requests.jsonl {records_bytes / 2**20:,.0f} MiB; peak RSS {max(v for _, v in rss) / 2**20:.1f} MiB"
    )
    print(f"{'requests':>10} {'elapsed s':>10} {'client RSS MiB':>15}")
    times = [t for t, _ in rss]
    after_first: list[float] = []
    for done in range(args.step, len(ends) + 1, args.step):
        at_ns = origin + ends[done - 1]
        _, value = rss[max(0, bisect.bisect_right(times, at_ns) - 1)]
        print(f"{done:>10,} {(at_ns - origin) / 1e9:>10.1f} {value / 2**20:>15.1f}")
        after_first.append(value / 2**20)
    if len(after_first) > 1:
        print(f"rise after the first {args.step:,}: {max(after_first[1:]) - after_first[0]:+.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
