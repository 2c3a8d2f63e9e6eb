"""Shared by the benchmark scripts: run loadgen in this process and read back its results."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from loadgen.cli import main as loadgen_main


def run_loadgen(args: list[str]) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    """``loadgen run ARGS`` with its console output suppressed; returns (summary, request records)."""
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "out"
        with contextlib.redirect_stdout(io.StringIO()):
            code = loadgen_main(["run", "--quiet", *args, "--output", str(output)])
        if code != 0:
            raise SystemExit(f"loadgen exited with {code}")
        summary = json.loads((output / "summary.json").read_text())
        records = [json.loads(line) for line in (output / "requests.jsonl").read_text().splitlines()]
    return summary, records
