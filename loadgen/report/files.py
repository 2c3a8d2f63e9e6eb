"""Report layer: result files.

- ``requests.jsonl``: one line per request, written when it ends; lines are batched and written
  at least every ``RecordWriter.FLUSH_INTERVAL_S`` (one write per batch, not per request, keeps
  the event loop free for reads), and on close, so Ctrl-C loses nothing already measured.
- ``<metric>.hlog``: HdrHistogram interval logs (values in µs, one line per interval), readable by
  HdrHistogram's tools and ``hdrh.log.HistogramLogReader``, so runs can be merged and re-analysed.
- ``summary.json`` / ``sweep.json``: written atomically (temp file, then rename).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO

import orjson
from hdrh.log import HistogramLogWriter

from loadgen.metrics.histogram import Histogram
from loadgen.records import RequestRecord


class RecordWriter:
    FLUSH_INTERVAL_S = 0.2
    FLUSH_BYTES = 256 * 1024

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("wb", buffering=0)
        self._lines: list[bytes] = []
        self._pending_bytes = 0
        self._next_flush = time.monotonic() + self.FLUSH_INTERVAL_S
        self.written = 0

    def on_record(self, record: RequestRecord) -> None:
        line = orjson.dumps(record.to_json_dict(), option=orjson.OPT_APPEND_NEWLINE)
        self._lines.append(line)
        self._pending_bytes += len(line)
        self.written += 1
        if self._pending_bytes >= self.FLUSH_BYTES or time.monotonic() >= self._next_flush:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            self._file.write(b"".join(self._lines))
            self._lines = []
            self._pending_bytes = 0
        self._next_flush = time.monotonic() + self.FLUSH_INTERVAL_S

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._file.close()


class HlogWriter:
    """Writes each closed metrics interval as one line per metric file."""

    def __init__(self, directory: Path, names: tuple[str, ...], run_start_epoch_s: float) -> None:
        self._files: dict[str, IO[str]] = {}
        self._writers: dict[str, HistogramLogWriter] = {}
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run_start_epoch_s))
        for name in names:
            handle = (directory / f"{name}.hlog").open("w", encoding="utf-8")
            unit = {"output_tokens_per_s": "thousandths of a token/s", "confidence": "thousandths"}.get(
                name, "microseconds"
            )
            handle.write(f"#[loadgen {name}: values in {unit}]\n")
            handle.write(
                f"#[Histogram log format version 1.2]\n#[StartTime: {run_start_epoch_s:.3f} "
                f"(seconds since epoch), {stamp}]\n"
            )
            handle.write('"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n')
            self._files[name] = handle
            self._writers[name] = HistogramLogWriter(handle)

    def on_interval(self, start_ns: int, end_ns: int, histograms: dict[str, Histogram]) -> None:
        for name, histogram in histograms.items():
            writer = self._writers.get(name)
            if writer is not None and histogram.count:
                writer.output_interval_histogram(histogram.hdr, start_ns / 1e9 or 1e-9, end_ns / 1e9, 1000.0)
                self._files[name].flush()

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()


def write_json(path: Path, data: object) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, allow_nan=False)
        handle.write("\n")
    os.replace(temporary, path)
