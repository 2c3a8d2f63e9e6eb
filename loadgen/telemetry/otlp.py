"""Telemetry: an OTLP trace receiver for ``--server-timings otlp``.

The server under test exports its request spans to it: over HTTP (vLLM's
``--otlp-traces-endpoint`` with ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf``, Triton, an
OpenTelemetry collector's ``otlphttp`` exporter), or over gRPC with ``--otlp-grpc-listen`` (vLLM's
default protocol, TGI's only one). It runs an aiohttp server (and grpcio's, when asked) on a thread
and event loop of its own, so decoding spans
never delays a read of the load's event loop. Spans of the traces loadgen started (the
``traceparent`` of each request: ``loadgen.engine.request.trace_id_for``) are kept by level until
the run tier joins them with the level's records; any other span is only counted. A body that is
not an export request is answered 400 and counted; the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from loadgen.errors import ConfigError, ProtocolError
from loadgen.protocols.base import ServerTimings
from loadgen.protocols.otlp import MAX_EXPORT_BYTES, ServerSpan, decode_export, span_timings

DEFAULT_LISTEN = ("127.0.0.1", 4318)  # OTLP/HTTP's own port
LEVEL_TAG_DIGITS = 20
START_TIMEOUT_S = 10.0


@dataclass
class LevelSpans:
    """The spans of one level's traces: trace id → the server's account (``ServerTimings`` as JSON)."""

    spans: dict[str, dict[str, float | str | None]] = field(default_factory=dict)
    measured: int = 0  # of them, measured requests' (not warm-up)


@dataclass
class ReceiverCounts:
    exports: int = 0
    spans: int = 0
    other_traces: int = 0  # spans of traces loadgen did not start
    preflight: int = 0
    late: int = 0  # spans of a level already joined
    rejected: int = 0  # bodies that were not OTLP export requests
    problems: list[str] = field(default_factory=list)  # the first of each kind, said once


GRPC_EXPORT_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class SpanReceiver:
    def __init__(self, host: str, port: int, grpc_address: tuple[str, int] | None = None) -> None:
        self._address = (host, port)
        self._grpc_address = grpc_address
        self.grpc_target = ""  # HOST:PORT of the gRPC listener, when there is one
        self._lock = threading.Lock()
        self._levels: dict[str, LevelSpans] = {}
        self._joined: set[str] = set()
        self._commands: set[str] = set()
        self.counts = ReceiverCounts()
        self._problem_kinds: set[str] = set()
        self._said = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self.url = ""

    def start(self) -> str:
        """Listening, or a one-line ``ConfigError`` (the port is taken): the URL to export to."""
        bound = threading.Event()
        failure: list[str] = []
        self._thread = threading.Thread(target=self._serve, args=(bound, failure), name="otlp-receiver", daemon=True)
        self._thread.start()
        if not bound.wait(START_TIMEOUT_S) or failure:
            reason = failure[0] if failure else "--otlp-listen: it did not start"
            raise ConfigError(reason)
        return self.url

    def stop(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():  # never started, or it could not listen
            return
        if self._loop is not None and self._stopped is not None:
            with contextlib.suppress(RuntimeError):  # its loop ended meanwhile
                self._loop.call_soon_threadsafe(self._stopped.set)
        thread.join(timeout=10)

    def expect_command(self, command_tag: str) -> None:
        """Traces of this command (its first 16 hex digits) are loadgen's: its preflight's too."""
        with self._lock:
            self._commands.add(command_tag)

    def expect(self, level_tag: str) -> None:
        """Keep the spans of this level's traces from now on."""
        with self._lock:
            self._commands.add(level_tag[:16])
            self._levels.setdefault(level_tag, LevelSpans())

    def measured_spans(self, level_tag: str) -> int:
        with self._lock:
            level = self._levels.get(level_tag)
            return level.measured if level is not None else 0

    def take(self, level_tag: str) -> LevelSpans:
        """The level's spans, for its join; any of its spans that come later count as late."""
        with self._lock:
            self._joined.add(level_tag)
            return self._levels.pop(level_tag, LevelSpans())

    def new_problems(self) -> list[str]:
        """Problems not yet said (the first of each kind)."""
        with self._lock:
            problems = self.counts.problems[self._said :]
            self._said = len(self.counts.problems)
        return problems

    async def wait_for(self, level_tag: str, expected: int, timeout_s: float, stop: asyncio.Event) -> float:
        """Until the spans of ``expected`` measured requests of the level are in, the timeout
        passes or the command stops; the seconds waited. (A server exports in batches: vLLM's
        every 5 s by default, ``OTEL_BSP_SCHEDULE_DELAY``.)"""
        started = time.monotonic()
        while self.measured_spans(level_tag) < expected and not stop.is_set():
            if time.monotonic() - started >= timeout_s:
                break
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    # --- the receiver's own thread -----------------------------------------------------------------

    def _serve(self, bound: threading.Event, failure: list[str]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run(bound, failure))
        finally:
            loop.close()
            bound.set()

    async def _run(self, bound: threading.Event, failure: list[str]) -> None:
        self._stopped = asyncio.Event()
        app = web.Application(client_max_size=MAX_EXPORT_BYTES)
        app.router.add_post("/{path:.*}", self._export)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._address[0], self._address[1])
            await site.start()
        except OSError as exc:
            failure.append(f"--otlp-listen {self._address[0]}:{self._address[1]}: cannot listen "
                           f"({exc.strerror or exc})")  # fmt: skip
            await runner.cleanup()
            return
        host, port = runner.addresses[0][:2] if runner.addresses else self._address
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/v1/traces"
        grpc_server = await self._serve_grpc(failure) if self._grpc_address is not None else None
        if failure:
            await runner.cleanup()
            return
        bound.set()
        try:
            await self._stopped.wait()
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=1.0)
            await runner.cleanup()

    async def _serve_grpc(self, failure: list[str]) -> Any:
        """OTLP over gRPC: ``TraceService/Export`` takes the same protobuf bytes as OTLP/HTTP."""
        import grpc

        assert self._grpc_address is not None
        host, port = self._grpc_address
        server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", MAX_EXPORT_BYTES), ("grpc.so_reuseport", 0)]
        )  # a port in use is an error, not shared
        handler = grpc.unary_unary_rpc_method_handler(self._grpc_export)  # raw bytes in and out
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(GRPC_EXPORT_SERVICE,
                                                                              {"Export": handler}),))  # fmt: skip
        try:
            bound_port = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        except RuntimeError as exc:  # grpcio says a port it cannot bind this way
            bound_port, reason = 0, str(exc)
        else:
            reason = "the address is taken or not this host's"
        if not bound_port:
            failure.append(f"--otlp-grpc-listen {host}:{port}: cannot listen ({reason})")
            return None
        await server.start()
        self.grpc_target = f"{host}:{bound_port}"
        return server

    async def _grpc_export(self, body: bytes, context: Any) -> bytes:
        import grpc

        try:
            spans = decode_export(body, "application/x-protobuf")
        except ProtocolError as exc:
            self._problem(str(exc).split(":")[0], str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return b""
        self._take(spans)
        return b""  # an empty ExportTraceServiceResponse

    async def _export(self, request: web.Request) -> web.Response:
        json_body = request.content_type == "application/json"
        try:
            body = await request.read()
            spans = decode_export(body, request.content_type, request.headers.get("Content-Encoding", ""))
        except web.HTTPRequestEntityTooLarge:
            self._problem("too_large", f"an OTLP export over {MAX_EXPORT_BYTES // 2**20} MiB was refused")
            raise
        except ProtocolError as exc:
            self._problem(str(exc).split(":")[0], str(exc))
            return web.Response(status=400, text=str(exc))
        self._take(spans)
        if json_body:
            return web.json_response({})
        return web.Response(body=b"", content_type="application/x-protobuf")  # an empty ExportTraceServiceResponse

    def _take(self, spans: list[ServerSpan]) -> None:
        with self._lock:
            self.counts.exports += 1
            for span in spans:
                self._keep(span.trace_id, span_timings(span))

    def _keep(self, trace_id: str, timings: ServerTimings | None) -> None:
        counts = self.counts
        counts.spans += 1
        tag, kind = trace_id[:LEVEL_TAG_DIGITS], trace_id[LEVEL_TAG_DIGITS : LEVEL_TAG_DIGITS + 1]
        level = self._levels.get(tag)
        if level is None:
            if tag in self._joined:
                counts.late += 1
            elif kind == "f" and tag[:16] in self._commands:
                counts.preflight += 1
            else:
                counts.other_traces += 1
            return
        if timings is None or trace_id in level.spans:
            return  # another span of the same request (a server's inner work): the first account stands
        level.spans[trace_id] = timings.to_json_dict()
        if kind == "0":
            level.measured += 1

    def _problem(self, kind: str, message: str) -> None:
        with self._lock:
            self.counts.rejected += 1
            if kind not in self._problem_kinds:
                self._problem_kinds.add(kind)
                self.counts.problems.append(message)
