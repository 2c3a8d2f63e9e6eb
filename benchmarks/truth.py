"""Truth benchmark: does loadgen report the latencies a server really produced?

A simulator process with fixed timings (TTFT 50 ms, then 10 ms per token, 128 tokens) logs, on
this host's monotonic clock (the one loadgen measures with), when each request reached its
handler and when each chunk was written. Every prompt starts with a word of its own, which the
simulator logs, so each loadgen record is matched with the server's record of the same request.
For each concurrency the benchmark prints, p50 / p99 in ms (error = loadgen − server):

- TTFT error: loadgen's TTFT (first token − intended send) minus the server's (first write −
  request received); split into the send side (server received − loadgen's send stamp) and the
  read side (loadgen's first-token stamp − the server's first write);
- per-chunk ITL error: each gap between chunks as loadgen saw it minus the server's gap;
- TPOT error: loadgen's TPOT minus the server's ((last write − first write) / (tokens − 1));
- loadgen's own delays: send lag (intended → last byte in the kernel) and read lag (kernel
  arrival → loadgen's read), and which stamp source it used.

Closed loop, no warm-up, users started together (the worst case: every stream's chunks are
written in the same instant).

    python benchmarks/truth.py [--levels 1,16,64,256] [--requests-per-user 4] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

from harness import run_loadgen

from loadgen.sim.process import SimProcess, SimSpec
from loadgen.sim.server import SimOptions

MS = 1_000_000
TTFT_MS, ITL_MS = 50, 10


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def write_prompts(path: Path, count: int) -> None:
    with path.open("w") as handle:
        for index in range(count):
            handle.write(json.dumps({"id": f"q{index}", "prompt": f"q{index} tell me about latency"}) + "\n")


def measure(concurrency: int, requests: int, tokens: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as directory:
        prompts = Path(directory) / "prompts.jsonl"
        write_prompts(prompts, requests)
        with SimProcess(SimSpec(f"fixed:{TTFT_MS},{ITL_MS}", SimOptions(keep_log=True, lean=True))) as sim:
            summary, records = run_loadgen([
                "--endpoint", sim.url, "--api", "openai-completions", "--concurrency", str(concurrency),
                "--requests", str(requests), "--warmup", "0", "--max-tokens", str(tokens), "--prompts", str(prompts),
            ])  # fmt: skip
            with urllib.request.urlopen(sim.url + "/sim/log", timeout=30) as response:
                server_log = json.load(response)
    origin = summary["clock"]["monotonic_start_ns"]
    served = {entry["first_word"]: entry for entry in server_log if len(entry["chunk_ns"]) == tokens}
    errors: dict[str, list[float]] = {name: [] for name in ("ttft", "send_side", "read_side", "itl", "tpot",
                                                            "send_lag", "read_lag")}  # fmt: skip
    matched = 0
    for record in records:
        entry = served.get(record["prompt_id"])
        if entry is None or len(record["chunk_ns"]) != tokens or record["error_kind"]:
            continue
        matched += 1
        written = [t - origin for t in entry["chunk_ns"]]
        received = entry["received_ns"] - origin
        arrived = record["chunk_ns"]
        server_ttft = written[0] - received
        errors["ttft"].append((arrived[0] - record["intended_ns"] - server_ttft) / MS)
        errors["send_side"].append((received - record["sent_ns"]) / MS)
        errors["read_side"].append((arrived[0] - written[0]) / MS)
        pairs = zip(arrived, arrived[1:], written, written[1:], strict=False)
        errors["itl"] += [((a1 - a0) - (w1 - w0)) / MS for a0, a1, w0, w1 in pairs]
        server_tpot = (written[-1] - written[0]) / (tokens - 1)
        client_tpot = (record["end_ns"] - arrived[0]) / (tokens - 1)
        errors["tpot"].append((client_tpot - server_tpot) / MS)
        errors["send_lag"].append((record["sent_ns"] - record["intended_ns"]) / MS)
        if record.get("read_lag_ns") is not None:
            errors["read_lag"].append(record["read_lag_ns"] / MS)
    if matched < len(records) * 0.9:
        raise SystemExit(f"c={concurrency}: only {matched} of {len(records)} records matched the server's log")
    result = {name: quantiles(values) for name, values in errors.items() if values}
    result["matched"] = (matched, len(records))  # type: ignore[assignment]
    result["cpu"] = (summary["client"]["cpu_percent"] or 0.0, 0.0)
    print(f"  stamps: {summary['clock']['stamp_source']}; saturated: {summary['client']['saturated']}", file=sys.stderr)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--requests-per-user", type=int, default=4)
    parser.add_argument("--min-requests", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=1, help="repeat each level; medians of the runs are printed")
    args = parser.parse_args()
    names = ("ttft", "send_side", "read_side", "itl", "tpot", "send_lag", "read_lag")
    print(f"truth: TTFT {TTFT_MS} ms, {ITL_MS} ms per token, {args.tokens} tokens; error = loadgen − server, "
          "ms as p50/p99" + (f", medians of {args.runs} runs" if args.runs > 1 else ""))  # fmt: skip
    print(f"{'users':>5} {'matched':>9} " + " ".join(f"{name:>15}" for name in names) + f" {'cpu %':>6}")
    for level in (int(value) for value in args.levels.split(",")):
        requests = max(args.min_requests, level * args.requests_per_user)
        runs = [measure(level, requests, args.tokens) for _ in range(args.runs)]
        cells = []
        for name in names:
            pairs = [run[name] for run in runs if name in run]
            if not pairs:
                cells.append(f"{'–':>15}")
                continue
            p50 = statistics.median(pair[0] for pair in pairs)
            p99 = statistics.median(pair[1] for pair in pairs)
            cells.append(f"{p50:>+7.3f}/{p99:<+7.2f}")
        matched, total = runs[-1]["matched"]
        cpu = statistics.median(run["cpu"][0] for run in runs)
        print(f"{level:>5} {matched:>4}/{total:<4} " + " ".join(cells) + f" {cpu:>6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
