"""Report layer: result files.

- ``requests.jsonl``: one line per request, written when it ends; lines are batched and written
  at least every ``RecordWriter.FLUSH_INTERVAL_S`` (one write per batch, not per request, keeps
  the event loop free for reads), and on close, so Ctrl-C loses nothing already measured.
- ``<metric>.hlog``: HdrHistogram interval logs (values in µs, one line per interval), readable by
  HdrHistogram's tools and ``hdrh.log.HistogramLogReader``, so runs can be merged and re-analysed.
- ``summary.json`` / ``sweep.json``: written atomically (temp file, then rename).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import msgspec
import orjson
from hdrh.log import HistogramLogWriter

from loadgen.errors import ConfigError, OutputError
from loadgen.metrics.histogram import Histogram
from loadgen.records import RequestRecord


class WriteFailures:
    """Write errors of one level's files, kept instead of raised: a full disk or a lost mount must
    not take with it what is still in memory. The summary carries them (``output_errors``)."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}
        self.lost: Counter[str] = Counter()

    def note(self, path: Path, error: OSError, lost: int = 1) -> None:
        self.first.setdefault(path.name, error.strerror or type(error).__name__)
        self.lost[path.name] += lost


class RecordWriter:
    FLUSH_INTERVAL_S = 0.2
    FLUSH_BYTES = 256 * 1024

    def __init__(self, path: Path, failures: WriteFailures | None = None) -> None:
        self.path = path
        self._failures = failures or WriteFailures()
        self._file: IO[bytes] = open_for_writing(path, "wb", buffering=0)
        self._good_bytes = 0  # the file ends after a whole line here
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
        """Writes the batch; on a write error the file is cut back to its last whole line (JSON
        lines stay valid) and the batch is counted as lost."""
        if self._lines:
            batch = self._lines
            data = b"".join(batch)
            lines = len(batch)
            self._lines = []
            self._pending_bytes = 0
            try:
                _write_all(self._file, data)
                self._good_bytes += len(data)
            except OSError:
                self._cut_back()
                self._salvage(batch, lines)
        self._next_flush = time.monotonic() + self.FLUSH_INTERVAL_S

    def _salvage(self, batch: list[bytes], lines: int) -> None:
        """After a failed batch: as many of its lines as still fit, one at a time; the rest lost."""
        for kept, line in enumerate(batch):
            try:
                _write_all(self._file, line)
                self._good_bytes += len(line)
            except OSError as error:
                self._cut_back()
                self._failures.note(self.path, error, lines - kept)
                return

    def _cut_back(self) -> None:
        with contextlib.suppress(OSError):
            self._file.truncate(self._good_bytes)
            self._file.seek(self._good_bytes)

    def close(self) -> None:
        try:
            self.flush()
            os.fsync(self._file.fileno())
        except OSError as error:
            self._failures.note(self.path, error, 0)
        finally:
            with contextlib.suppress(OSError):
                self._file.close()


class HlogWriter:
    """Writes each closed metrics interval as one line per metric file."""

    def __init__(self, directory: Path, names: tuple[str, ...], run_start_epoch_s: float,
                 failures: WriteFailures | None = None) -> None:  # fmt: skip
        self._failures = failures or WriteFailures()
        self._files: dict[str, IO[str]] = {}
        self._paths = {name: directory / f"{name}.hlog" for name in names}
        self._writers: dict[str, HistogramLogWriter] = {}
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run_start_epoch_s))
        for name in names:
            handle = open_for_writing(self._paths[name], "w")
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
                try:
                    writer.output_interval_histogram(histogram.hdr, start_ns / 1e9 or 1e-9, end_ns / 1e9, 1000.0)
                    self._files[name].flush()
                except OSError as error:  # that file stops here; the totals still reach the summary
                    self._failures.note(self._paths[name], error)
                    del self._writers[name]

    def close(self) -> None:
        for name, handle in self._files.items():
            try:
                handle.close()
            except OSError as error:
                self._failures.note(self._paths[name], error, 0)


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file; a cut-off last line (a crash mid-write) is skipped, a
    bad line elsewhere is one line naming it."""
    for _, record in _json_lines(path):
        yield record


def read_request_records(path: Path) -> Iterator[RequestRecord]:
    """The records of a ``requests.jsonl``, each checked field by field (one line naming the line
    and the field when one does not fit)."""
    for number, data in _json_lines(path):
        try:
            yield RequestRecord.from_json_dict(data)
        except msgspec.ValidationError as error:
            raise ConfigError(f"{path}:{number}: not a request record ({error})") from None


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as lines:
        pending: tuple[int, str] | None = None
        for number, line in enumerate(lines, 1):
            if pending is not None:
                raise ConfigError(f"{path}:{pending[0]}: not a JSON record: {pending[1][:80]!r}")
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                pending = (number, line)
                continue
            if not isinstance(record, dict):
                raise ConfigError(f"{path}:{number}: not a JSON record (an object): {line[:80]!r}")
            yield number, record


LOCK_FILE = ".loadgen.lock"


class OutputLock:
    """``--output`` held by one command at a time: an exclusive ``flock`` on a file in it, released
    when the command ends (the kernel releases it even when the process is killed)."""

    def __init__(self, directory: Path) -> None:
        self._path = path = directory / LOCK_FILE
        try:
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            raise ConfigError(f"--output {directory}: cannot write there ({error.strerror or error})") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(self._fd).st_ino != os.stat(path, follow_symlinks=False).st_ino:
                raise OSError("the lock file was released and removed meanwhile")  # its holder just finished
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise ConfigError(f"--output {directory}: another loadgen command is writing its results there; "
                              "give another directory") from None  # fmt: skip

    def release(self) -> None:
        """Removes the lock file (results hold only results), then lets go of the lock."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def prepare_output_dir(directory: Path) -> OutputLock:
    """Creates ``--output``, checks that files can be written there and takes it for this command
    (``OutputLock``), before any load: a directory that cannot take results, or that another run is
    writing to, is one line now, not a lost run later."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".loadgen-write-check"
        with open_for_writing(probe, "wb"):
            pass
        probe.unlink()
    except FileExistsError:
        raise ConfigError(f"--output {directory}: a file is there; give a directory") from None
    except OSError as error:
        raise ConfigError(f"--output {directory}: cannot write there ({error.strerror or error})") from None
    return OutputLock(directory)


def open_for_writing(path: Path, mode: str = "wb", buffering: int = -1, newline: str | None = None) -> IO[Any]:
    """``path`` opened to be written from its start, never through a symbolic link planted where a
    result file goes (its target would be overwritten): such a link is an ``OutputError``."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OutputError(f"cannot write {path}: it is a symbolic link, and loadgen never writes through "
                              "one (remove it, or give another --output)") from None  # fmt: skip
        raise
    return os.fdopen(fd, mode, buffering=buffering, encoding=None if "b" in mode else "utf-8", newline=newline)


def _write_all(file: IO[bytes], data: bytes) -> None:
    """A raw file may take only part of a write (a disk filling up) before the next one fails."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def write_text(path: Path, text: str) -> None:
    """A page or table written whole (``write_atomically``), its directory made first."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    write_atomically(path, text.encode("utf-8"))


def write_json(path: Path, data: object) -> None:
    """JSON, indented (``write_atomically``). orjson: json.dump with an indent runs in Python, one
    write per token (10,000 levels took 25 s); a figure that is not finite becomes null, never
    invalid JSON."""
    write_atomically(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
                                        | orjson.OPT_NON_STR_KEYS))  # fmt: skip


def write_atomically(path: Path, data: bytes) -> None:
    """A temporary file, fsynced, then renamed, never through a link; an ``OSError`` becomes one
    ``OutputError`` naming the file and the reason, and leaves no temporary file behind."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open_for_writing(temporary, "wb") as handle:
            _write_all(handle, data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
