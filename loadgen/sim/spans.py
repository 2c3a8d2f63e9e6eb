"""Simulator: each finished request's span, exported over OTLP/HTTP (protobuf) as vLLM exports its
own: one ``llm_request`` span continuing the request's ``traceparent`` (a trace of its own without
one), with the modelled queue, prefill and decode times as ``gen_ai.latency.*`` attributes in
seconds. Spans go out in batches every ``FLUSH_S``, as a batch span processor sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from dataclasses import dataclass

import aiohttp

from loadgen.protocols.otlp import encode_spans

FLUSH_S = 0.1
MAX_BATCH = 512
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


@dataclass(slots=True)
class Account:
    """One request as the simulated server saw it (``perf_counter`` seconds)."""

    arrival_s: float
    queued_s: float = 0.0
    scheduled_s: float = 0.0
    first_token_s: float = 0.0
    last_token_s: float = 0.0

    def attributes(self, end_s: float, prompt_tokens: int, completion_tokens: int) -> dict[str, float | int]:
        """vLLM's span attributes (``vllm.v1.engine.output_processor.do_tracing``)."""
        return {
            "gen_ai.latency.time_to_first_token": self.first_token_s - self.arrival_s,
            "gen_ai.latency.e2e": end_s - self.arrival_s,
            "gen_ai.latency.time_in_queue": self.scheduled_s - self.queued_s,
            "gen_ai.latency.time_in_model_prefill": self.first_token_s - self.scheduled_s,
            "gen_ai.latency.time_in_model_decode": self.last_token_s - self.first_token_s,
            "gen_ai.latency.time_in_model_inference": self.last_token_s - self.scheduled_s,
            "gen_ai.usage.prompt_tokens": prompt_tokens,
            "gen_ai.usage.completion_tokens": completion_tokens,
        }


class SpanExporter:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._pending: list[tuple[str, str, str, int, int, dict[str, float | int]]] = []
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.exported = 0
        self.failed = 0  # spans whose export did not succeed (dropped, as an exporter drops them)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._flush()
        if self._session is not None:
            await self._session.close()

    def add(self, traceparent: str | None, arrival_s: float, end_s: float, attributes: dict[str, float | int]) -> str:
        """Queues one finished request's span (``Account.attributes``); its trace id."""
        match = TRACEPARENT.match(traceparent or "")
        trace_id, parent_id = (match.group(1), match.group(2)) if match else (secrets.token_hex(16), "")
        now_s, now_ns = time.perf_counter(), time.time_ns()  # the span's times on the wall clock, as exported
        start_ns = now_ns - round((now_s - arrival_s) * 1e9)
        end_ns = now_ns - round((now_s - end_s) * 1e9)
        self._pending.append((trace_id, parent_id, secrets.token_hex(8), start_ns, end_ns, attributes))
        return trace_id

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self._flush()

    async def _flush(self) -> None:
        while self._pending and self._session is not None:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            body = encode_spans(batch, "loadgen-sim")
            try:
                async with self._session.post(self.endpoint, data=body,
                                              headers={"Content-Type": "application/x-protobuf"},
                                              timeout=aiohttp.ClientTimeout(total=10)) as reply:  # fmt: skip
                    await reply.read()
                    ok = reply.status == 200
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                ok = False
            if ok:
                self.exported += len(batch)
            else:
                self.failed += len(batch)
