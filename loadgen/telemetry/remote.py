"""Telemetry layer: sampling on another host.

``loadgen monitor`` runs a ``Sampler`` on the GPU host and serves, over HTTP:
- ``GET /clock``: that host's monotonic clock, ``{"t_ns": …}``;
- ``GET /samples?after=N``: samples numbered above N, ``{"next": M, "samples": […], "unavailable": {…}}``;
- ``GET /metrics``: the latest value of each reading in Prometheus text format (for Grafana).

``RemoteSource`` (``loadgen run --telemetry-url``) estimates the clock offset between the hosts
the NTP way: of several ``/clock`` probes, the one with the shortest round trip gives
offset = remote time − midpoint of local send and receive, uncertain by half that round trip. It
then pulls new samples each poll and moves their stamps onto the local clock.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from loadgen.telemetry.model import Sample, SourceUnavailable
from loadgen.telemetry.sampler import Sampler

CLOCK_PROBES = 7
REMOTE_TIMEOUT_S = 3.0
BUFFER_SAMPLES = 200_000


class SampleBuffer:
    """Numbered samples for remote readers; bounded, oldest dropped first."""

    def __init__(self, capacity: int = BUFFER_SAMPLES) -> None:
        self._samples: deque[tuple[int, Sample]] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._next = 1
        self.latest: dict[tuple[str, str], Sample] = {}

    def add(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append((self._next, sample))
            self._next += 1
            self.latest[(sample.source, sample.device)] = sample

    def after(self, number: int, limit: int = 10_000) -> tuple[int, list[Sample]]:
        with self._lock:
            picked = [(n, s) for n, s in self._samples if n > number][:limit]
        return (picked[-1][0] if picked else number), [sample for _, sample in picked]


def monitor_app(
    sampler: Sampler, buffer: SampleBuffer, clock: Callable[[], int] = time.perf_counter_ns
) -> web.Application:
    async def clock_handler(request: web.Request) -> web.Response:
        return web.json_response({"t_ns": clock()})

    async def samples_handler(request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            return web.json_response({"error": "'after' must be a whole number"}, status=400)
        next_number, samples = buffer.after(after)
        return web.json_response({
            "next": next_number, "samples": [sample.to_json_dict() for sample in samples],
            "unavailable": sampler.unavailable,
        })  # fmt: skip

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(text=prometheus_text(list(buffer.latest.values())), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/clock", clock_handler)
    app.router.add_get("/samples", samples_handler)
    app.router.add_get("/metrics", metrics_handler)
    return app


def prometheus_text(samples: list[Sample]) -> str:
    lines: dict[str, list[str]] = {}
    for sample in sorted(samples, key=lambda s: (s.source, s.device)):
        for key, value in sorted(sample.values.items()):
            name = "loadgen_" + re.sub(r"[^a-zA-Z0-9_]", "_", f"{sample.source}_{key}")
            label = f'{{device="{sample.device}"}}' if sample.device else ""
            lines.setdefault(name, [f"# TYPE {name} gauge"]).append(f"{name}{label} {value}")
    return "".join(line + "\n" for block in lines.values() for line in block)


class RemoteSource:
    name = "remote"

    def __init__(self, url: str, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.url = url.rstrip("/")
        self._clock = clock
        self._after = 0
        self.offset_ns: int | None = None
        self.uncertainty_ns: int | None = None
        self.remote_unavailable: dict[str, str] = {}

    def _get(self, path: str) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=REMOTE_TIMEOUT_S) as response:
                data = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SourceUnavailable(
                f"cannot reach loadgen monitor at {self.url}: {getattr(exc, 'reason', exc)}"
            ) from None
        if not isinstance(data, dict):
            raise SourceUnavailable(f"{self.url}{path} did not answer with a JSON object")
        return data

    def estimate_offset(self) -> None:
        best: tuple[int, int] | None = None  # (round trip, offset)
        for _ in range(CLOCK_PROBES):
            sent = self._clock()
            remote = int(self._get("/clock")["t_ns"])
            received = self._clock()
            round_trip = received - sent
            if best is None or round_trip < best[0]:
                best = (round_trip, remote - (sent + received) // 2)
        assert best is not None
        self.uncertainty_ns, self.offset_ns = best[0] // 2, best[1]

    def open(self) -> None:
        self.estimate_offset()

    def read(self, t_ns: int) -> list[Sample]:
        data = self._get(f"/samples?after={self._after}")
        self._after = int(data.get("next", self._after))
        self.remote_unavailable = dict(data.get("unavailable") or {})
        assert self.offset_ns is not None
        samples = []
        for entry in data.get("samples") or ():
            values = {k: float(v) for k, v in entry.items() if k not in ("t_ns", "source", "device")}
            samples.append(
                Sample(int(entry["t_ns"]) - self.offset_ns, str(entry["source"]), str(entry["device"]), values)
            )
        return samples

    def close(self) -> None:
        return None
