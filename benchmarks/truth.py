"""Truth benchmark: does loadgen report the latencies a server really produced?

A simulator process with fixed timings (TTFT 50 ms, then 10 ms per token, 128 tokens) logs, on
this host's monotonic clock (the one loadgen measures with), when each request reached its handler
and when each chunk was written. loadgen drives 64 concurrent streams; the benchmark prints

- loadgen's TTFT and ITL percentiles beside the server's own (target: p50 within 1 ms, p99 within
  3 ms);
- loadgen's own timing error: for every chunk, loadgen's arrival stamp minus the server's write
  time (requests matched by the order of their first chunk);
- the request path: the server's handler start minus loadgen's send time. This is time the request
  spent in the client library, the kernel and the server's accept/parse queue; a real user waits it,
  but the server's own TTFT cannot see it.

It runs twice: users started together (every stream's chunks are written in the same instant, the
worst case for any single-threaded client and server), and users ramped up over one request's
duration (arrivals spread out, as in real traffic).

    python benchmarks/truth.py [--concurrency 64] [--requests 320]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import urllib.request

from harness import run_loadgen

from loadgen.metrics.histogram import Histogram
from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions

MS = 1_000_000
TTFT_MS, ITL_MS = 50, 10


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    return statistics.median(ordered), at(0.9), at(0.99)


def measure(concurrency: int, requests: int, tokens: int, ramp_up_s: float) -> None:
    with SimProcess(SimSpec(f"fixed:{TTFT_MS},{ITL_MS}", SimOptions(keep_log=True))) as sim:
        summary, records = run_loadgen([
            "--endpoint", sim.url, "--concurrency", str(concurrency), "--requests", str(requests),
            "--warmup", "0", "--max-tokens", str(tokens), "--ramp-up", f"{ramp_up_s}s",
        ])  # fmt: skip
        with urllib.request.urlopen(sim.url + "/sim/log", timeout=30) as response:
            server_log = json.load(response)
    origin = summary["clock"]["monotonic_start_ns"]
    records = sorted((r for r in records if len(r["chunk_ns"]) == tokens), key=lambda r: r["chunk_ns"][0])
    server_log = sorted((e for e in server_log if len(e["chunk_ns"]) == tokens), key=lambda e: e["chunk_ns"][0])
    server_ttft, server_itl = Histogram.latency(), Histogram.latency()
    chunk_error_ms: list[float] = []
    request_path_ms: list[float] = []
    for record, entry in zip(records, server_log, strict=True):
        server_ttft.record(entry["chunk_ns"][0] - entry["received_ns"])
        for previous, current in zip(entry["chunk_ns"], entry["chunk_ns"][1:], strict=False):
            server_itl.record(current - previous)
        chunk_error_ms += [
            (origin + arrival - written) / MS
            for arrival, written in zip(record["chunk_ns"], entry["chunk_ns"], strict=True)
        ]
        request_path_ms.append((entry["received_ns"] - origin - record["sent_ns"]) / MS)
    client = summary["latency_ms"]
    label = "users started together" if ramp_up_s == 0 else f"users ramped over {ramp_up_s:g} s"
    print(f"\n{concurrency} streams, {len(records)} requests × {tokens} tokens, {label}")
    print(f"  {'':<5} {'pct':>4} {'server ms':>10} {'loadgen ms':>11} {'diff ms':>8}")
    for name, server in (("TTFT", server_ttft), ("ITL", server_itl)):
        for pct, key in ((50, "p50"), (90, "p90"), (99, "p99")):
            server_value = server.percentile(pct)
            client_value = client[name.lower()][key]
            print(
                f"  {name:<5} {'p' + str(pct):>4} {server_value:>10.3f} {client_value:>11.3f} "
                f"{client_value - server_value:>+8.3f}"
            )
    p50, p90, p99 = percentiles(chunk_error_ms)
    print(
        f"  loadgen timing error per chunk (arrival stamp − server write): p50 {p50:.3f}  p90 {p90:.3f}  "
        f"p99 {p99:.3f} ms"
    )
    p50, p90, p99 = percentiles(request_path_ms)
    print(
        f"  request path (server handler start − loadgen send):             p50 {p50:.3f}  p90 {p90:.3f}  "
        f"p99 {p99:.3f} ms"
    )
    print(
        f"  loadgen CPU {summary['client']['cpu_percent']}% of a core; schedule lag p99 "
        f"{client['schedule_lag']['p99']:.3f} ms; saturated: {summary['client']['saturated']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    request_duration_s = (TTFT_MS + (args.tokens - 1) * ITL_MS) / 1000
    for ramp_up_s in (0.0, round(request_duration_s, 2)):
        measure(args.concurrency, args.requests, args.tokens, ramp_up_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
