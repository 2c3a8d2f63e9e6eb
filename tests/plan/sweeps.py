"""Sweep results written by hand for planning tests."""

from __future__ import annotations

import json
from pathlib import Path


def level(
    concurrency: int,
    rps: float,
    ttft_p95: float,
    tpot_p95: float,
    *,
    error_rate: float = 0.0,
    output_tokens: int = 200,
    completed: int = 100,
    joules: float | None = None,
) -> dict:  # type: ignore[type-arg]
    summary = {
        "load": {"mode": "closed", "concurrency": concurrency, "rate": None},
        "throughput": {"requests_per_s": rps, "output_tokens_per_s": rps * output_tokens},
        "tokens": {"output_total": output_tokens * completed, "input_total": 500 * completed},
        "requests": {"completed": completed, "error_rate": error_rate},
        "latency_ms": {
            "ttft": {"p50": ttft_p95 / 2, "p95": ttft_p95},
            "tpot": {"p50": tpot_p95 * 0.9, "p95": tpot_p95},
        },
    }
    if joules is not None:
        summary["telemetry"] = {"joules_per_output_token": joules}
    return summary


def write_sweep(directory: Path, levels: list[dict]) -> str:  # type: ignore[type-arg]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sweep.json").write_text(json.dumps({"schema_version": 1, "levels": levels}))
    return str(directory)
