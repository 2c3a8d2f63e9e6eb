"""Report layer: result files.

- ``requests.jsonl``: one line per request, written when it ends and flushed line by line, so a
  crash or Ctrl-C loses nothing already measured.
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

from hdrh.log import HistogramLogWriter

from loadgen.metrics.histogram import Histogram
from loadgen.records import RequestRecord


class RecordWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("w", encoding="utf-8", buffering=1)
        self.written = 0

    def on_record(self, record: RequestRecord) -> None:
        self._file.write(json.dumps(record.to_json_dict(), separators=(",", ":")) + "\n")
        self.written += 1

    def close(self) -> None:
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
