"""Report layer: a level whose command ended without writing ``summary.json`` (killed, the machine
lost) is rebuilt from what it left on disk: every whole line of ``requests.jsonl`` into the same
aggregator a run uses, its load from the level's directory name or ``config.json``. The summary
says so (``derived``, ``partial``, ``stop_reason``): telemetry, the client's own lag and the
server's metrics were never written, so they are missing, not zero."""

from __future__ import annotations

import re
from pathlib import Path

from msgspec.structs import replace

from loadgen.config import LoadConfig, LoadMode
from loadgen.engine.monitor import ClientReport
from loadgen.engine.runner import StopReason
from loadgen.metrics.aggregate import Aggregator
from loadgen.metrics.results import RunConfig, RunSummary
from loadgen.metrics.summary import RunInfo, build_summary
from loadgen.metrics.validity import level_validity
from loadgen.report.files import read_request_records

REBUILT = ("rebuilt from requests.jsonl: the command ended without writing this summary (killed?); telemetry, "
           "client lag and server metrics were not written and are missing")  # fmt: skip
LEVEL_NAME = re.compile(r"level-\d+-(?:c(?P<users>\d+)|r(?P<rate>[0-9.e+-]+))(?:-b(?P<batch>\d+))?$")


def rebuilt_levels(directory: Path, config: RunConfig | None) -> list[RunSummary]:
    """The summaries of a directory's levels that have records and no summary: the directory
    itself (one run), or its ``level-*`` directories (a sweep cut short)."""
    if (directory / "requests.jsonl").is_file() and not (directory / "summary.json").is_file():
        return [rebuild_level(directory, config)]
    return [rebuild_level(level, config) for level in sorted(directory.glob("level-*"))
            if (level / "requests.jsonl").is_file() and not (level / "summary.json").is_file()]  # fmt: skip


def rebuild_level(directory: Path, config: RunConfig | None) -> RunSummary:
    aggregator = Aggregator(())
    for record in read_request_records(directory / "requests.jsonl"):
        aggregator.on_record(record)
    config = config or RunConfig()
    options = config.options
    info = RunInfo(
        endpoint=config.endpoint or "", api=config.api or "", model=config.model, load=_load(directory.name, options),
        stream=not options.get("no_stream", False), started_at="", ended_at="", partial=True,
        stop_reason=StopReason.NO_SUMMARY.value, client=ClientReport(None, None, False, None), slo=(),
        tokenizer=None, listener_failures={},
    )  # fmt: skip
    summary = replace(build_summary(aggregator, info), derived=(REBUILT,))
    return replace(summary, validity=level_validity(summary, float(options.get("max_error_rate", 0.05))))


def _load(name: str, options: dict[str, object]) -> LoadConfig:
    match = LEVEL_NAME.match(name)
    batch = int(match["batch"]) if match and match["batch"] else 1
    if match and match["users"]:
        return LoadConfig(mode=LoadMode.CLOSED, concurrency=int(match["users"]), batch_size=batch)
    if match and match["rate"]:
        return LoadConfig(mode=LoadMode.OPEN, rate_rps=float(match["rate"]), batch_size=batch)
    rate, users = _single(options.get("rate")), _single(options.get("concurrency"))
    if rate is not None:
        return LoadConfig(mode=LoadMode.OPEN, rate_rps=rate)
    return LoadConfig(mode=LoadMode.CLOSED, concurrency=int(users or 1))


def _single(value: object) -> float | None:
    """An option's value when it names one level (``16`` or ``[16]``); None otherwise."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
