"""Progress while measuring: in place on a terminal, plain lines with an ETA in a CI log."""

from __future__ import annotations

import asyncio
import io

from rich.console import Console

from loadgen.metrics.aggregate import Aggregator
from loadgen.report.console import LiveStatus


def test_a_piped_run_prints_plain_progress_lines_with_an_eta(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(LiveStatus, "PLAIN_INTERVAL_S", 0.02)
    output = io.StringIO()
    console = Console(file=output, width=200, color_system=None)  # not a terminal
    aggregator = Aggregator()
    elapsed = iter(range(1, 1000))

    async def measure() -> None:
        with LiveStatus(console, "[1/2] concurrency 4", aggregator.snapshot, lambda: float(next(elapsed)), 100, 60.0):
            await asyncio.sleep(0.07)

    asyncio.run(measure())
    lines = output.getvalue().splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("[1/2] concurrency 4") and "done 0/100" in line and "ETA" in line for line in lines)
