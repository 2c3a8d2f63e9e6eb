"""Telemetry layer: ``loadgen monitor``, the sampler as a small HTTP service on a GPU host."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web
from rich.console import Console

from loadgen.config import TelemetryConfig
from loadgen.errors import LoadgenError
from loadgen.telemetry.catalog import build_sources
from loadgen.telemetry.remote import SampleBuffer, monitor_app
from loadgen.telemetry.sampler import Sampler


def serve_monitor(config: TelemetryConfig, host: str, port: int, console: Console) -> int:
    buffer = SampleBuffer()
    sampler = Sampler(build_sources(config, config.server_metrics_url or ""), config.interval_s, buffer.add)
    for source, reason in sampler.start().items():
        console.print(f"telemetry: {source} not available: {reason}", style="yellow")
    if not sampler.active:
        sampler.stop()
        raise LoadgenError("no telemetry source can run on this host")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(sampler, buffer, host, port, console))
    finally:
        sampler.stop()
    return 0


async def _serve(sampler: Sampler, buffer: SampleBuffer, host: str, port: int, console: Console) -> None:
    runner = web.AppRunner(monitor_app(sampler, buffer), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        raise LoadgenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    console.print(f"loadgen monitor on http://{host}:{bound} (sources: {', '.join(s.name for s in sampler.sources)})")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
