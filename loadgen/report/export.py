"""Report layer: CSV export of summaries (one row per run or sweep level) and of per-request
records (streamed row by row; chunk arrival lists become their count)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SUMMARY_COLUMNS = (
    "source", "mode", "concurrency", "rate", "completed", "failed", "error_rate", "requests_per_s",
    "output_tokens_per_s", "input_tokens_per_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms",
    "tpot_p99_ms", "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "schedule_lag_p99_ms",
    "goodput_fraction", "output_token_method", "partial",
)  # fmt: skip
RECORD_COLUMNS = (
    "source", "index", "prompt_id", "warmup", "intended_ns", "sent_ns", "first_byte_ns", "first_token_ns", "end_ns",
    "chunks", "input_tokens", "output_tokens", "output_token_method", "finish_reason", "error_kind", "http_status",
    "mean_logprob", "correct",
)  # fmt: skip


def _summaries(directory: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    if (directory / "sweep.json").is_file():
        for number, level in enumerate(json.loads((directory / "sweep.json").read_text())["levels"], 1):
            level_dirs = sorted(directory.glob(f"level-{number:02d}-*"))
            yield (level_dirs[0] if level_dirs else directory), level
    elif (directory / "summary.json").is_file():
        yield directory, json.loads((directory / "summary.json").read_text())


def summary_row(source: Path, summary: dict[str, Any]) -> dict[str, object]:
    latency, throughput = summary["latency_ms"], summary["throughput"]
    goodput = summary.get("goodput") or {}
    return {
        "source": str(source), "mode": summary["load"]["mode"], "concurrency": summary["load"]["concurrency"],
        "rate": summary["load"]["rate"], "completed": summary["requests"]["completed"],
        "failed": summary["requests"]["failed"], "error_rate": summary["requests"]["error_rate"],
        "requests_per_s": throughput["requests_per_s"], "output_tokens_per_s": throughput["output_tokens_per_s"],
        "input_tokens_per_s": throughput["input_tokens_per_s"],
        **{f"{metric}_{key}_ms": latency[metric][key]
           for metric, key in (("ttft", "p50"), ("ttft", "p90"), ("ttft", "p99"), ("tpot", "p50"), ("tpot", "p99"),
                               ("itl", "p50"), ("itl", "p99"), ("e2e", "p50"), ("e2e", "p99"),
                               ("schedule_lag", "p99"))},
        "goodput_fraction": goodput.get("fraction"),
        "output_token_method": summary["token_counting"]["output_method"], "partial": summary["partial"],
    }  # fmt: skip


def export_csv(directories: list[Path], output: Path) -> tuple[Path, Path]:
    output.mkdir(parents=True, exist_ok=True)
    summaries_path, records_path = output / "summaries.csv", output / "requests.csv"
    with summaries_path.open("w", newline="") as summaries, records_path.open("w", newline="") as records:
        summary_writer = csv.DictWriter(summaries, SUMMARY_COLUMNS)
        record_writer = csv.DictWriter(records, RECORD_COLUMNS, extrasaction="ignore")
        summary_writer.writeheader()
        record_writer.writeheader()
        for directory in directories:
            for source, summary in _summaries(directory):
                summary_writer.writerow(summary_row(source, summary))
                path = source / "requests.jsonl"
                if not path.is_file():
                    continue
                with path.open() as lines:
                    for line in lines:
                        record = json.loads(line)
                        record_writer.writerow({**record, "source": str(source), "chunks": len(record["chunk_ns"])})
    return summaries_path, records_path
