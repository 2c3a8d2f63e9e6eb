"""Telemetry layer: the load generator's handle on the sidecar sampling process.

Samples land in ``telemetry.jsonl`` (written by the child); this side reads them back for each
level's window. ``t_ns`` is ``perf_counter_ns``, which on Linux and macOS is the system-wide
monotonic clock, shared by both processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

from loadgen.config import TelemetryConfig
from loadgen.errors import LoadgenError
from loadgen.lifetime import ends_with_this_process
from loadgen.telemetry.model import Sample

REPLY_TIMEOUT_S = 30.0


class SidecarSampler:
    def __init__(self, config: TelemetryConfig, endpoint_url: str, output: Path, client_pid: int | None = None) -> None:
        """``client_pid``: the process sending the load (default: this one)."""
        self._client_pid = client_pid or os.getpid()
        self._config = config
        self._endpoint_url = endpoint_url
        self.output = output
        self._process: subprocess.Popen[str] | None = None
        self._offset = 0
        self._partial = ""
        self.samples: list[Sample] = []
        self.unavailable: dict[str, str] = {}
        self.final_stats: dict[str, Any] | None = None

    def start(self) -> dict[str, str]:
        settings = {
            "config": dataclasses.asdict(self._config), "output": str(self.output),
            "endpoint_url": self._endpoint_url, "client_pid": self._client_pid,
        }  # fmt: skip
        # a file, never an unread pipe that could fill and block the child
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "loadgen.telemetry.child", json.dumps(settings)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            start_new_session=True,  # Ctrl-C to the process group is the parent's to handle: it stops the child
            preexec_fn=ends_with_this_process(),
        )  # fmt: skip
        ready = self._reply()
        self.unavailable = dict(ready.get("unavailable") or {})
        return self.unavailable

    def _reply(self) -> dict[str, Any]:
        process = self._process
        assert process is not None and process.stdout is not None
        readable, _, _ = select.select([process.stdout], [], [], REPLY_TIMEOUT_S)
        line = process.stdout.readline() if readable else ""
        if not line:
            self._stderr.seek(0)
            error = self._stderr.read()[-500:]
            raise LoadgenError(f"the telemetry sidecar stopped answering: {error.strip() or 'no reply'}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _command(self, command: str) -> dict[str, Any]:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return self._reply()

    def sample_now(self) -> None:
        self._command("sample")

    def stats(self) -> dict[str, Any]:
        return self._command("stats").get("stats") or {}

    def _read_new_samples(self) -> None:
        with self.output.open("r", encoding="utf-8") as handle:
            handle.seek(self._offset)
            text = self._partial + handle.read()
            self._offset = handle.tell()
        lines = text.split("\n")
        self._partial = lines.pop()
        self.samples.extend(sample_from_json(json.loads(line)) for line in lines if line)

    def window(self, start_ns: int, end_ns: int) -> list[Sample]:
        self._read_new_samples()
        return [sample for sample in self.samples if start_ns <= sample.t_ns <= end_ns]

    def cpu_seconds(self) -> float | None:
        """The sidecar process's whole CPU time so far (start-up included)."""
        if self._process is None or self._process.poll() is not None:
            return None
        times = psutil.Process(self._process.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> dict[str, Any] | None:
        process = self._process
        if process is None:
            return self.final_stats
        try:
            if process.poll() is None:
                self.final_stats = self._command("stop").get("stats")
        except (LoadgenError, OSError, ValueError):
            pass
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):  # a pipe the child closed: nothing left to flush
                        stream.close()
            self._stderr.close()
            self._process = None
        return self.final_stats


def sample_from_json(entry: dict[str, Any]) -> Sample:
    """A line of ``telemetry.jsonl``: its readings sit beside ``t_ns``, ``source`` and ``device``."""
    values = {k: v for k, v in entry.items() if k not in ("t_ns", "source", "device")}
    return Sample(entry["t_ns"], entry["source"], entry["device"], values)


def read_window(path: Path, start_ns: int, end_ns: int) -> list[Sample]:
    """The samples of a sidecar's ``telemetry.jsonl`` (written by another process) taken between
    two instants of this host's monotonic clock; a line cut off mid-write is left out."""
    if not path.is_file():
        return []
    samples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            sample = sample_from_json(json.loads(line))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if start_ns <= sample.t_ns <= end_ns:
            samples.append(sample)
    return samples
