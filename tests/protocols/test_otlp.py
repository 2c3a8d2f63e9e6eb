"""OTLP trace exports decoded as they come: protobuf built with the OpenTelemetry messages (the way
vLLM's exporter sends them) and OTLP JSON, gzip or not; each server's account read from its span;
malformed, truncated and oversized bodies are one-line errors."""

from __future__ import annotations

import gzip
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from loadgen.errors import ProtocolError
from loadgen.protocols.base import ServerTimings
from loadgen.protocols.otlp import MAX_EXPORT_BYTES, ServerSpan, decode_export, encode_spans, span_timings

TRACE = "0123456789abcdef0001000000000005"
VLLM_ATTRIBUTES = {  # as vLLM 0.32's do_tracing writes them (seconds), from a real export
    "gen_ai.latency.time_to_first_token": 0.0154933929,
    "gen_ai.latency.e2e": 0.0362503528,
    "gen_ai.latency.time_in_queue": 4.2079e-05,
    "gen_ai.usage.prompt_tokens": 3,
    "gen_ai.usage.completion_tokens": 4,
    "gen_ai.latency.time_in_model_prefill": 0.00996581,
    "gen_ai.latency.time_in_model_decode": 0.02091827,
    "gen_ai.request.id": "cmpl-1",
}
VLLM_TIMINGS = ServerTimings("OpenTelemetry span (gen_ai.latency)", queue_ms=pytest.approx(0.042079),
                             prefill_ms=pytest.approx(9.96581), decode_ms=pytest.approx(20.91827),
                             ttft_ms=pytest.approx(15.4933929), total_ms=pytest.approx(36.2503528))  # fmt: skip


def vllm_export(trace_id: str = TRACE) -> bytes:
    return encode_spans([(trace_id, "0000000000000006", "51d8c702c775f945", 1_796_420_968_215_789_824,
                          1_796_420_968_252_948_860, VLLM_ATTRIBUTES)], "vllm")  # fmt: skip


def json_export(spans: list[dict[str, object]]) -> bytes:
    return json.dumps(
        {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}]}]}
    ).encode()


def test_a_protobuf_export_as_vllm_sends_it() -> None:
    (span,) = decode_export(vllm_export(), "application/x-protobuf")
    assert span.trace_id == TRACE and span.name == "llm_request"
    assert span.start_ns == 1_796_420_968_215_789_824 and span.end_ns == 1_796_420_968_252_948_860
    assert span.attributes["gen_ai.usage.prompt_tokens"] == 3
    assert span_timings(span) == VLLM_TIMINGS


def test_gzip_and_json_bodies_give_the_same_account() -> None:
    (zipped,) = decode_export(gzip.compress(vllm_export()), "application/x-protobuf", "gzip")
    attributes = [{"key": key, "value": {"doubleValue": value} if isinstance(value, float) else
                   {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}
                  for key, value in VLLM_ATTRIBUTES.items()]  # fmt: skip
    body = json_export([{"traceId": TRACE.upper(), "spanId": "51d8c702c775f945", "name": "llm_request",
                         "startTimeUnixNano": "1796420968215789824", "endTimeUnixNano": "1796420968252948860",
                         "attributes": attributes}])  # fmt: skip
    (from_json,) = decode_export(body, "application/json; charset=utf-8")
    assert from_json.trace_id == TRACE and from_json.start_ns == 1_796_420_968_215_789_824
    assert span_timings(zipped) == span_timings(from_json) == VLLM_TIMINGS


def test_other_servers_spans() -> None:
    tgi = ServerSpan(TRACE, "generate_stream", attributes={"queue_time": "1.5ms", "inference_time": "2.25s",
                                                           "total_time": "2251500µs", "seed": "None"})  # fmt: skip
    assert span_timings(tgi) == ServerTimings("OpenTelemetry span (TGI)", queue_ms=1.5, compute_ms=2250.0,
                                              total_ms=2251.5)  # fmt: skip
    triton = ServerSpan(TRACE, "compute", events={"QUEUE_START": 1_000_000, "COMPUTE_START": 3_500_000,
                                                  "COMPUTE_END": 13_500_000})  # fmt: skip
    assert span_timings(triton) == ServerTimings("OpenTelemetry span (Triton events)", queue_ms=2.5, compute_ms=10.0)
    backwards = ServerSpan(TRACE, "compute", events={"QUEUE_START": 9, "COMPUTE_START": 3, "COMPUTE_END": 13})
    assert span_timings(backwards) is None
    assert span_timings(ServerSpan(TRACE, "Worker init", attributes={"code.function": "init_worker"})) is None


@pytest.mark.parametrize("odd", [-0.5, float("nan"), float("inf"), "0.5", True, None])
def test_odd_values_are_not_figures(odd: object) -> None:
    timings = span_timings(ServerSpan(TRACE, "llm_request", attributes={"gen_ai.latency.time_in_queue": odd,
                                                                        "gen_ai.latency.e2e": 0.25}))  # fmt: skip
    assert timings is not None and timings.queue_ms is None and timings.total_ms == 250.0


def test_spans_without_a_valid_trace_id_join_nothing() -> None:
    body = json_export([{"traceId": "xyz", "name": "a"}, {"traceId": TRACE[:30], "name": "b"}, {"name": "c"},
                        {"traceId": TRACE, "name": "d", "attributes": "not a list", "events": [1, None]}])  # fmt: skip
    assert [span.name for span in decode_export(body, "application/json")] == ["d"]
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(trace_id=b"short", name="x")
    assert decode_export(request.SerializeToString(), "application/x-protobuf") == []


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "says"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf", "", "OTLP protobuf export does not parse"),
        (vllm_export()[:-7], "application/x-protobuf", "", "OTLP protobuf export does not parse"),
        (b'{"resourceSpans": [', "application/json", "", "OTLP JSON export does not parse"),
        (b"[1, 2]", "application/json", "", "not an object"),
        (b"plain text", "text/plain", "", "expected application/x-protobuf or application/json"),
        (b"not gzip", "application/x-protobuf", "gzip", "not valid gzip"),
        (gzip.compress(vllm_export())[:-9], "application/x-protobuf", "gzip", "ends early"),
        (vllm_export(), "application/x-protobuf", "br", "expected gzip or none"),
    ],
)
def test_malformed_exports_are_one_line(body: bytes, content_type: str, encoding: str, says: str) -> None:
    with pytest.raises(ProtocolError, match=says) as raised:
        decode_export(body, content_type, encoding)
    assert "\n" not in str(raised.value)


def test_oversized_exports_are_refused_before_parsing() -> None:
    bomb = gzip.compress(b"\0" * (MAX_EXPORT_BYTES + 1))  # 32 MiB of zeros in 32 KiB
    with pytest.raises(ProtocolError, match="over the 32 MiB limit once decompressed"):
        decode_export(bomb, "application/x-protobuf", "gzip")
    with pytest.raises(ProtocolError, match="over the 32 MiB limit"):
        decode_export(b"\0" * (MAX_EXPORT_BYTES + 1), "application/x-protobuf")
