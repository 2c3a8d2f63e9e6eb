"""Protocols layer: OpenTelemetry trace exports (OTLP/HTTP, protobuf or JSON) → the spans of the
requests loadgen sent, and each server's own account of a request in them.

A body is an ``ExportTraceServiceRequest``: protobuf (``application/x-protobuf``, decoded by the
``opentelemetry-proto`` package) or OTLP's JSON form (``application/json``: lowerCamelCase keys,
trace ids in hex, 64-bit numbers as strings or numbers), either one possibly gzip-compressed.
What loadgen reads of a span (``span_timings``):

- vLLM's ``llm_request`` span: ``gen_ai.latency.time_in_queue``, ``…time_in_model_prefill``,
  ``…time_in_model_decode``, ``…time_to_first_token`` and ``…e2e`` (seconds);
- TGI's request span: ``queue_time``, ``inference_time`` and ``total_time`` fields, Rust durations
  written as text (``"1.234ms"``);
- Triton's ``opentelemetry`` trace mode: the ``QUEUE_START``, ``COMPUTE_START`` and
  ``COMPUTE_END`` events of its compute span.

The simulator writes vLLM's form (``encode_spans``), so the same join is tested end to end.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadgen.errors import ProtocolError
from loadgen.protocols.base import ServerTimings, milliseconds

MAX_EXPORT_BYTES = 32 * 1024 * 1024  # one export request, after decompression (the OTel collector's is 20 MiB)
GEN_AI_SECONDS = {  # vLLM's span attribute → ServerTimings field (the values are in seconds)
    "gen_ai.latency.time_in_queue": "queue_ms",
    "gen_ai.latency.time_in_model_prefill": "prefill_ms",
    "gen_ai.latency.time_in_model_decode": "decode_ms",
    "gen_ai.latency.time_to_first_token": "ttft_ms",
    "gen_ai.latency.e2e": "total_ms",
}
TGI_DURATIONS = {"queue_time": "queue_ms", "inference_time": "compute_ms", "total_time": "total_ms"}
TRITON_EVENTS = ("QUEUE_START", "COMPUTE_START", "COMPUTE_END")
RUST_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ns|µs|us|ms|s)\s*$")
DURATION_MS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True, slots=True)
class ServerSpan:
    """One span as exported: its trace (32 hex digits), times on the server's wall clock
    (Unix ns), attributes and named events (name → Unix ns)."""

    trace_id: str
    name: str
    start_ns: int = 0
    end_ns: int = 0
    attributes: Mapping[str, object] = field(default_factory=dict)
    events: Mapping[str, int] = field(default_factory=dict)


def decode_export(body: bytes, content_type: str, content_encoding: str = "") -> list[ServerSpan]:
    """The spans of one OTLP/HTTP export request; ``ProtocolError`` (one line) when it is not one."""
    if content_encoding.strip().lower() == "gzip":
        body = _gunzip(body)
    elif content_encoding.strip().lower() not in ("", "identity"):
        raise ProtocolError(f"OTLP export with Content-Encoding {content_encoding!r}: expected gzip or none")
    if len(body) > MAX_EXPORT_BYTES:
        raise ProtocolError(f"OTLP export of {len(body):,} bytes: over the {MAX_EXPORT_BYTES // 2**20} MiB limit")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        return _decode_json(body)
    if kind in ("application/x-protobuf", "application/protobuf", ""):
        return _decode_protobuf(body)
    raise ProtocolError(f"OTLP export with Content-Type {content_type!r}: expected application/x-protobuf or "
                        "application/json")  # fmt: skip


def span_timings(span: ServerSpan) -> ServerTimings | None:
    """The server's account of its request in one span, in ms; None for a span without one."""
    attributes = span.attributes
    if any(name in attributes for name in GEN_AI_SECONDS):
        parts = {part: _seconds_as_ms(attributes.get(name)) for name, part in GEN_AI_SECONDS.items()}
        if any(value is not None for value in parts.values()):
            return ServerTimings("OpenTelemetry span (gen_ai.latency)", **parts)
    if any(name in attributes for name in TGI_DURATIONS):
        parts = {part: _duration_ms(attributes.get(name)) for name, part in TGI_DURATIONS.items()}
        if any(value is not None for value in parts.values()):
            return ServerTimings("OpenTelemetry span (TGI)", **parts)
    events = span.events
    if all(name in events for name in TRITON_EVENTS):
        queued, computing, computed = (events[name] for name in TRITON_EVENTS)
        if queued <= computing <= computed:
            return ServerTimings("OpenTelemetry span (Triton events)", queue_ms=(computing - queued) / 1e6,
                                 compute_ms=(computed - computing) / 1e6)  # fmt: skip
    return None


def encode_spans(spans: Iterable[tuple[str, str, str, int, int, Mapping[str, float | int | str]]],
                 service: str) -> bytes:  # fmt: skip
    """A protobuf export request of (trace id, parent span id, span id, start ns, end ns,
    attributes) spans, all hex ids, from one service (the simulator's)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    service_name = resource_spans.resource.attributes.add()
    service_name.key, service_name.value.string_value = "service.name", service
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "loadgen.sim"
    for trace_id, parent_id, span_id, start_ns, end_ns, attributes in spans:
        span = scope.spans.add()
        span.trace_id, span.span_id = bytes.fromhex(trace_id), bytes.fromhex(span_id)
        span.parent_span_id = bytes.fromhex(parent_id) if parent_id else b""
        span.name, span.kind = "llm_request", Span.SPAN_KIND_SERVER
        span.start_time_unix_nano, span.end_time_unix_nano = start_ns, end_ns
        for key, value in attributes.items():
            attribute = span.attributes.add()
            attribute.key = key
            if isinstance(value, float):
                attribute.value.double_value = value
            elif isinstance(value, int):
                attribute.value.int_value = value
            else:
                attribute.value.string_value = str(value)
    return bytes(request.SerializeToString())


def _gunzip(body: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_EXPORT_BYTES + 1)
    except zlib.error as exc:
        raise ProtocolError(f"OTLP export is not valid gzip: {exc}") from None
    if len(data) > MAX_EXPORT_BYTES:
        raise ProtocolError(f"OTLP export over the {MAX_EXPORT_BYTES // 2**20} MiB limit once decompressed")
    if not inflater.eof:
        raise ProtocolError("OTLP export's gzip stream ends early")
    return data


def _decode_protobuf(body: bytes) -> list[ServerSpan]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ProtocolError(f"OTLP protobuf export does not parse: {exc}") from None
    spans = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16:
                    continue  # an invalid trace id joins nothing
                attributes = {attribute.key: _any_value(attribute.value) for attribute in span.attributes}
                events = {event.name: int(event.time_unix_nano) for event in span.events}
                spans.append(ServerSpan(span.trace_id.hex(), span.name, int(span.start_time_unix_nano),
                                        int(span.end_time_unix_nano), attributes, events))  # fmt: skip
    return spans


def _any_value(value: Any) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "int_value", "double_value", "bool_value") else None


def _decode_json(body: bytes) -> list[ServerSpan]:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"OTLP JSON export does not parse: {exc}") from None
    if not isinstance(request, dict):
        raise ProtocolError("OTLP JSON export is not an object with resourceSpans")
    spans = []
    for resource_spans in _list(request, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                trace_id = _field(span, "traceId", "trace_id")
                if not isinstance(trace_id, str) or not re.fullmatch(r"[0-9a-fA-F]{32}", trace_id):
                    continue
                attributes = {str(item["key"]): _json_value(item.get("value"))
                              for item in _list(span, "attributes") if isinstance(item.get("key"), str)}  # fmt: skip
                events = {str(event["name"]): _json_int(_field(event, "timeUnixNano", "time_unix_nano"))
                          for event in _list(span, "events") if isinstance(event.get("name"), str)}  # fmt: skip
                name = span.get("name")
                spans.append(ServerSpan(trace_id.lower(), name if isinstance(name, str) else "",
                                        _json_int(_field(span, "startTimeUnixNano", "start_time_unix_nano")),
                                        _json_int(_field(span, "endTimeUnixNano", "end_time_unix_nano")),
                                        attributes, events))  # fmt: skip
    return spans


def _field(container: dict[str, Any], *names: str) -> object:
    for name in names:
        if name in container:
            return container[name]
    return None


def _list(container: object, *names: str) -> list[dict[str, Any]]:
    """The objects of a list field; a field that is not a list of objects is not a span's."""
    if not isinstance(container, dict):
        return []
    items = _field(container, *names)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _json_value(value: object) -> object:
    if not isinstance(value, dict):
        return None
    for key in ("doubleValue", "double_value"):
        if key in value:
            return _json_float(value[key])
    for key in ("intValue", "int_value"):
        if key in value:
            return _json_int(value[key])
    for key in ("stringValue", "string_value", "boolValue", "bool_value"):
        if key in value:
            return value[key]
    return None


def _json_int(value: object) -> int:
    """OTLP JSON writes 64-bit integers as strings (or numbers); anything else is 0 (unknown)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def _json_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):  # "NaN", "Infinity" are valid JSON-protobuf doubles; not figures
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _seconds_as_ms(value: object) -> float | None:
    """A number of seconds as ms, when it is a figure (``milliseconds``); text is not, in a span."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return milliseconds(value * 1e3)


def _duration_ms(value: object) -> float | None:
    """A Rust ``Duration`` as TGI writes it (``{:?}``): ``"1.234567ms"``, ``"12µs"``, ``"2.5s"``."""
    if not isinstance(value, str):
        return None
    match = RUST_DURATION.match(value)
    if match is None:
        return None
    return float(match.group(1)) * DURATION_MS[match.group(2)]
