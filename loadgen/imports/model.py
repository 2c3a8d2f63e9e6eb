"""Import layer: one imported load level, and the sweep directory it becomes.

An imported level holds only what its source had: a statistic the source did not report stays
None (never filled in from another), and what the source cannot give (HDR histograms, per-request
records, telemetry) is named in ``lacks`` so nothing downstream invents it. Figures derived from
others (requests/s from tokens/s and the output length) are named in ``derived``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from loadgen import __version__
from loadgen.errors import ConfigError
from loadgen.metrics.results import (
    Distribution,
    ImportedSource,
    Latency,
    Load,
    Requests,
    RunConfig,
    RunSummary,
    SweepResult,
    Throughput,
    TokenCounting,
    Tokens,
)
from loadgen.report.files import write_json

STATISTICS = ("mean", "min", "p50", "p90", "p95", "p99", "p99_9", "max")
METRICS = ("ttft", "ttfot", "tpot", "itl", "itl_chunk", "e2e")
ALWAYS_LACKING = ("hdr_histograms", "per_request_records", "interval_logs", "client_lag")


@dataclass
class ImportedLevel:
    mode: str  # "closed" (concurrency) or "open" (offered requests/s)
    load: float
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # "ttft" → {"p99": 812.0}
    requests_per_s: float | None = None
    output_tokens_per_s: float | None = None
    input_tokens_per_s: float | None = None
    output_tokens_per_request: float | None = None
    input_tokens_per_request: float | None = None
    completed: int | None = None
    failed: int | None = None
    duration_s: float | None = None
    derived: list[str] = field(default_factory=list)
    where: str = ""  # file (and row or benchmark) it came from, for messages

    def set_latency(self, metric: str, statistic: str, value_ms: float | None) -> None:
        if value_ms is not None:
            self.latency_ms.setdefault(metric, {})[statistic] = float(value_ms)

    def complete(self) -> None:
        """Fills what follows from what is there, saying so, and checks the level can be planned from."""
        per_request, rps, tokens_s = self.output_tokens_per_request, self.requests_per_s, self.output_tokens_per_s
        if rps is None and tokens_s is not None and per_request:
            self.requests_per_s = tokens_s / per_request
            self.derived.append("requests_per_s = output tokens/s ÷ output tokens per request")
        elif tokens_s is None and rps is not None and per_request:
            self.output_tokens_per_s = rps * per_request
            self.derived.append("output_tokens_per_s = requests/s × output tokens per request")
        elif per_request is None and rps and tokens_s is not None:
            self.output_tokens_per_request = tokens_s / rps
            self.derived.append("output_tokens_per_request = output tokens/s ÷ requests/s")
        if self.requests_per_s is None:
            raise ConfigError(f"{self.where}: no throughput: give requests/s, or output tokens/s with the output "
                              "length (a column, or --output-tokens)")  # fmt: skip
        if self.output_tokens_per_request is None:
            raise ConfigError(f"{self.where}: no output length: give output tokens/s or an output-length column, "
                              "or --output-tokens")  # fmt: skip
        if not self.latency_ms:
            raise ConfigError(f"{self.where}: no latency figures (TTFT, TPOT/ITL or end-to-end)")

    def to_summary(self, source: ImportedSource) -> RunSummary:
        """In the shape of loadgen's own summary, None where the source had nothing."""
        closed = self.mode == "closed"
        failed = self.failed
        total = (self.completed or 0) + (failed or 0)
        return RunSummary(
            loadgen_version=__version__,
            imported=source,
            stop_reason="imported",
            load=Load(
                mode=self.mode, concurrency=int(self.load) if closed else None, rate=None if closed else self.load
            ),
            measured_window_s=self.duration_s,
            latency_ms=Latency(**{metric: self._distribution(metric) for metric in METRICS}),
            throughput=Throughput(
                requests_per_s=self.requests_per_s,
                output_tokens_per_s=self.output_tokens_per_s,
                input_tokens_per_s=self.input_tokens_per_s,
                sequences_per_s=self.requests_per_s,
            ),
            requests=Requests(
                completed=self.completed,
                failed=failed,
                error_rate=failed / total if failed is not None and total else 0.0,
            ),
            tokens=Tokens(
                output_per_request=self.output_tokens_per_request, input_per_request=self.input_tokens_per_request
            ),
            token_counting=TokenCounting(output_method="imported", input_method="imported"),
            derived=tuple(self.derived),
        )

    def _distribution(self, metric: str) -> Distribution:
        return msgspec.convert(self.latency_ms.get(metric, {}), Distribution)


@dataclass
class ImportedSweep:
    tool: str  # "aiperf", "genai-perf", "vllm-bench", "guidellm", "table"
    files: list[str]
    levels: list[ImportedLevel]
    definitions: dict[str, str]  # loadgen metric → what the source's figure is
    lacks: list[str]
    assumptions: list[str] = field(default_factory=list)

    def source(self, derived: tuple[str, ...] = ()) -> ImportedSource:
        return ImportedSource(tool=self.tool, files=tuple(self.files), definitions=self.definitions,
                              lacks=tuple(self.lacks), assumptions=tuple(self.assumptions),
                              derived=derived)  # fmt: skip


def write_sweep(sweep: ImportedSweep, directory: Path) -> Path:
    """``directory/sweep.json`` with one summary per level, ordered by load."""
    modes = {level.mode for level in sweep.levels}
    if len(modes) != 1:
        raise ConfigError(f"{', '.join(sweep.files)}: mixes concurrency and request-rate levels; import them apart")
    levels = sorted(sweep.levels, key=lambda level: level.load)
    for level in levels:
        level.complete()
    source = sweep.source(tuple(sorted({item for level in levels for item in level.derived})))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sweep.json"
    result = SweepResult(imported=source, config=RunConfig(imported=source),
                         levels=tuple(level.to_summary(source) for level in levels))  # fmt: skip
    write_json(path, result.to_json())
    return path


def lacking(statistics_seen: set[str]) -> list[str]:
    """What a source without per-request data lacks, plus the usual percentiles it did not report."""
    missing = [f"latency {s}" for s in ("p50", "p90", "p95", "p99") if s not in statistics_seen]
    return [*ALWAYS_LACKING, *missing]
