"""Report layer: CSV export of summaries (one row per run or sweep level) and of per-request
records (streamed row by row; chunk arrival lists become their count; TTFT, TPOT and E2E in ms
as ``loadgen.metrics.request_metrics`` defines them, empty where not measured)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError, OutputError
from loadgen.metrics import request_metrics as rm
from loadgen.metrics.comparison import read_compare
from loadgen.metrics.request_metrics import RequestFigures
from loadgen.metrics.results import RunSummary, read_summary, read_sweep
from loadgen.report.files import open_for_writing, read_request_records

SUMMARY_COLUMNS = (
    "source", "mode", "concurrency", "rate", "completed", "failed", "error_rate", "requests_per_s",
    "output_tokens_per_s", "input_tokens_per_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms",
    "tpot_p99_ms", "itl_p50_ms", "itl_p99_ms", "e2e_p50_ms", "e2e_p99_ms", "schedule_lag_p99_ms",
    "goodput_fraction", "output_token_method", "partial", "valid", "verdict", "validity_marks",
    "ttft_count", "tpot_count", "itl_count", "e2e_count", "thin_percentiles",
    # the server's own account, means (ms) that add up to the mean TTFT of the requests it covers
    "server_requests", "server_join_rate", "client_overhead_mean_ms", "transit_mean_ms", "frontend_mean_ms",
    "queue_mean_ms", "prefill_mean_ms", "decode_mean_ms", "server_ttft_mean_ms", "server_total_mean_ms",
)  # fmt: skip
SERVER_RECORD_PARTS = ("queue_ms", "prefill_ms", "decode_ms", "ttft_ms", "total_ms")
SERVER_MEANS = {"client_overhead_mean_ms": "client_overhead_ms", "transit_mean_ms": "transit_ms",
                "frontend_mean_ms": "frontend_ms", "queue_mean_ms": "queue_ms", "prefill_mean_ms": "prefill_ms",
                "decode_mean_ms": "decode_ms", "server_ttft_mean_ms": "ttft_ms",
                "server_total_mean_ms": "total_ms"}  # fmt: skip
RECORD_COLUMNS = (
    "source", "index", "prompt_id", "warmup", "intended_ns", "sent_ns", "first_byte_ns", "first_token_ns", "end_ns",
    "chunks", "input_tokens", "output_tokens", "output_token_method", "finish_reason", "error_kind", "http_status",
    "mean_logprob", "correct", "ttft_ms", "tpot_ms", "e2e_ms", "cached_input_tokens", "first_answer_ns",
    "reasoning_tokens", "ttfot_ms", "session", "turn", "trace_id", "server_source", "server_queue_ms",
    "server_prefill_ms", "server_decode_ms", "server_ttft_ms", "server_total_ms",
)  # fmt: skip


def _summaries(directory: Path) -> Iterator[tuple[Path, RunSummary]]:
    if (directory / "sweep.json").is_file():
        for number, level in enumerate(read_sweep(directory / "sweep.json").levels, 1):
            level_dirs = sorted(directory.glob(f"level-{number:02d}-*"))
            yield (level_dirs[0] if level_dirs else directory), level
    elif (directory / "summary.json").is_file():
        yield directory, read_summary(directory / "summary.json")
    elif (directory / "compare.json").is_file():  # each variant's levels, its name in the source column
        for variant in read_compare(directory / "compare.json").variants:
            for level_dir in sorted((directory / variant.name).glob("level-*")):
                if (level_dir / "summary.json").is_file():
                    yield level_dir, read_summary(level_dir / "summary.json")


LATENCY_COLUMNS = (("ttft", "p50"), ("ttft", "p90"), ("ttft", "p99"), ("tpot", "p50"), ("tpot", "p99"),
                   ("itl", "p50"), ("itl", "p99"), ("e2e", "p50"), ("e2e", "p99"), ("schedule_lag", "p99"))  # fmt: skip


def summary_row(source: Path, summary: RunSummary) -> dict[str, object]:
    latency, throughput, load, requests = summary.latency_ms, summary.throughput, summary.load, summary.requests
    return {
        "source": str(source), "mode": load.mode, "concurrency": load.concurrency, "rate": load.rate,
        "completed": requests.completed, "failed": requests.failed, "error_rate": requests.error_rate,
        "requests_per_s": throughput.requests_per_s, "output_tokens_per_s": throughput.output_tokens_per_s,
        "input_tokens_per_s": throughput.input_tokens_per_s,
        **{f"{metric}_{key}_ms": latency.metric(metric).statistic(key) for metric, key in LATENCY_COLUMNS},
        "goodput_fraction": summary.goodput.fraction if summary.goodput else None,
        "output_token_method": summary.token_counting.output_method, "partial": summary.partial,
        # the level's verdict as it was judged: a figure from an INVALID level says so in its own row
        "valid": summary.validity.valid if summary.validity else None,
        "verdict": summary.validity.verdict if summary.validity else None,
        "validity_marks": " ".join(summary.validity.marks) if summary.validity else None,
        # the samples behind each metric's percentiles, and the exported percentiles too few stand behind
        **{f"{metric}_count": latency.metric(metric).count for metric in ("ttft", "tpot", "itl", "e2e")},
        "thin_percentiles": " ".join(f"{metric}_{key}_ms" for metric, key in LATENCY_COLUMNS
                                     if latency.metric(metric).thin(key)),
        **_server_columns(summary),
    }  # fmt: skip


def _server_columns(summary: RunSummary) -> dict[str, object]:
    account = summary.server_timings
    if account is None:
        return {}
    join = account.join
    return {"server_requests": account.requests, "server_join_rate": join.rate if join is not None else None,
            **{column: account.mean(part) for column, part in SERVER_MEANS.items()}}  # fmt: skip


def _rows(directories: list[Path]) -> Iterator[tuple[str, dict[str, object]]]:
    """("summary", row) for each run or level, then ("record", row) for each of its requests."""
    for directory in directories:
        for source, summary in _summaries(directory):
            yield "summary", summary_row(source, summary)
            own = source / "requests.jsonl"
            # a distributed Locust test keeps each worker's records beside the master's summary
            for path in [own] if own.is_file() else sorted(source.glob("worker-*/requests.jsonl")):
                for record in read_request_records(path):
                    data = record.to_json_dict()
                    row = {column: data.get(column) for column in RECORD_COLUMNS}
                    figures = RequestFigures.of(record)
                    ttfot_ns = rm.ttfot_ns(record)
                    timings = record.server_timings or {}
                    derived = {"ttft_ms": figures.ttft_ms, "tpot_ms": figures.tpot_ms, "e2e_ms": figures.e2e_ms,
                               "ttfot_ms": ttfot_ns / 1e6 if ttfot_ns is not None else None,
                               "server_source": timings.get("source"),
                               **{f"server_{part}": timings.get(part) for part in SERVER_RECORD_PARTS}}  # fmt: skip
                    yield "record", {**row, "source": str(path.parent), "chunks": len(record.chunk_ns), **derived}


def export_csv(directories: list[Path], output: Path) -> tuple[Path, Path]:
    summaries_path, records_path = output / "summaries.csv", output / "requests.csv"
    try:
        output.mkdir(parents=True, exist_ok=True)
        with (
            open_for_writing(summaries_path, "w", newline="") as summaries,
            open_for_writing(records_path, "w", newline="") as records,
        ):
            writers = {
                "summary": csv.DictWriter(summaries, SUMMARY_COLUMNS),
                "record": csv.DictWriter(records, RECORD_COLUMNS),
            }
            for writer in writers.values():
                writer.writeheader()
            for kind, row in _rows(directories):
                writers[kind].writerow({name: spreadsheet_safe(value) for name, value in row.items()})
    except OSError as error:
        raise OutputError(f"cannot write {output}: {error.strerror or error}") from None
    return summaries_path, records_path


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """Text a spreadsheet would run as a formula (a prompt id "=HYPERLINK(…)", a directory named
    "+cmd") gets a leading apostrophe, as OWASP advises; numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


PARQUET_BATCH_ROWS = 50_000


def export_parquet(directories: list[Path], output: Path) -> tuple[Path, Path]:
    """The same tables as Parquet (``pip install 'loadgen[parquet]'``), records written in batches."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("--export parquet needs pyarrow (pip install 'loadgen[parquet]')") from None
    output.mkdir(parents=True, exist_ok=True)
    paths = {"summary": output / "summaries.parquet", "record": output / "requests.parquet"}
    schemas = {
        "summary": pa.schema([(c, _SUMMARY_TYPES.get(c, pa.float64())) for c in SUMMARY_COLUMNS]),
        "record": pa.schema([(c, _RECORD_TYPES.get(c, pa.int64())) for c in RECORD_COLUMNS]),
    }
    writers = {kind: pq.ParquetWriter(str(path), schemas[kind]) for kind, path in paths.items()}
    pending: dict[str, list[dict[str, object]]] = {"summary": [], "record": []}

    def flush(kind: str) -> None:
        if pending[kind]:
            writers[kind].write_table(pa.Table.from_pylist(pending[kind], schema=schemas[kind]))
            pending[kind] = []

    try:
        for kind, row in _rows(directories):
            pending[kind].append(row)
            if len(pending[kind]) >= PARQUET_BATCH_ROWS:
                flush(kind)
        for kind in pending:
            flush(kind)
    finally:
        for writer in writers.values():
            writer.close()
    return paths["summary"], paths["record"]


def _arrow_types() -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        import pyarrow as pa
    except ImportError:
        return {}, {}
    text, integer, flag, number = pa.string(), pa.int64(), pa.bool_(), pa.float64()
    summary = {"source": text, "mode": text, "concurrency": integer, "completed": integer, "failed": integer,
               "output_token_method": text, "partial": flag, "valid": flag, "verdict": text,
               "validity_marks": text, "thin_percentiles": text, "ttft_count": integer, "tpot_count": integer,
               "itl_count": integer, "e2e_count": integer, "server_requests": integer}  # fmt: skip
    record = {"source": text, "prompt_id": text, "warmup": flag, "output_token_method": text, "finish_reason": text,
              "error_kind": text, "mean_logprob": number, "correct": flag, "ttft_ms": number, "tpot_ms": number,
              "e2e_ms": number, "ttfot_ms": number, "session": text, "trace_id": text, "server_source": text,
              **{f"server_{part}": number for part in SERVER_RECORD_PARTS}}  # fmt: skip
    return summary, record


_SUMMARY_TYPES, _RECORD_TYPES = _arrow_types()
