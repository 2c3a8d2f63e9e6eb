"""The OTLP/HTTP receiver over a real socket: protobuf and JSON exports, bodies sent in pieces
(chunked), malformed and oversized ones answered and counted while the receiver goes on; spans
kept by level and joined once, other traces only counted."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest

from loadgen.errors import ConfigError
from loadgen.protocols.otlp import MAX_EXPORT_BYTES, encode_spans
from loadgen.telemetry.otlp import SpanReceiver

COMMAND = "0123456789abcdef"
LEVEL = COMMAND + "0001"
SECONDS = {"gen_ai.latency.time_in_queue": 0.002, "gen_ai.latency.time_in_model_prefill": 0.01,
           "gen_ai.latency.time_in_model_decode": 0.1, "gen_ai.latency.time_to_first_token": 0.0125,
           "gen_ai.latency.e2e": 0.113}  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[SpanReceiver]:
    spans = SpanReceiver("127.0.0.1", 0)
    spans.start()
    yield spans
    spans.stop()


def post(receiver: SpanReceiver, body: bytes, content_type: str, pieces: int = 1,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
    host, port = receiver.url.removeprefix("http://").split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        if pieces == 1:
            connection.request("POST", "/v1/traces", body, {"Content-Type": content_type, **(headers or {})})
        else:  # Transfer-Encoding: chunked, the body in uneven pieces
            size = max(1, len(body) // pieces)
            parts = [body[i : i + size] for i in range(0, len(body), size)]
            connection.request("POST", "/v1/traces", iter(parts), {"Content-Type": content_type}, encode_chunked=True)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def span(index: int, kind: str = "0", tag: str = LEVEL) -> tuple[str, str, str, int, int, dict[str, float]]:
    return (f"{tag}{kind}{index:011x}", f"{index + 1:016x}", f"{index + 7:016x}", 10, 20, SECONDS)


def test_spans_are_kept_by_level_and_joined_once(receiver: SpanReceiver) -> None:
    receiver.expect(LEVEL)
    body = encode_spans([span(1), span(2), span(3, kind="1")], "sim")
    assert post(receiver, body, "application/x-protobuf", pieces=7) == (200, b"")
    other = encode_spans([span(1, tag="f" * 20), span(9, kind="f", tag=COMMAND + "0000")], "sim")
    assert post(receiver, other, "application/x-protobuf")[0] == 200
    assert receiver.measured_spans(LEVEL) == 2  # the warm-up request's span is kept, not counted as measured
    level = receiver.take(LEVEL)
    assert set(level.spans) == {span(i, kind)[0] for i, kind in ((1, "0"), (2, "0"), (3, "1"))}
    assert level.spans[span(1)[0]] == {"source": "OpenTelemetry span (gen_ai.latency)", "queue_ms": 2.0,
                                       "prefill_ms": 10.0, "decode_ms": 100.0, "compute_ms": None,
                                       "ttft_ms": 12.5, "total_ms": 113.0}  # fmt: skip
    assert post(receiver, encode_spans([span(4)], "sim"), "application/x-protobuf")[0] == 200
    counts = receiver.counts
    assert (counts.exports, counts.spans, counts.other_traces, counts.preflight, counts.late) == (3, 6, 1, 1, 1)


def test_json_exports_and_bad_bodies(receiver: SpanReceiver) -> None:
    receiver.expect(LEVEL)
    trace_id = span(5)[0]
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": trace_id, "name": "llm_request",
        "attributes": [{"key": "gen_ai.latency.e2e", "value": {"doubleValue": 0.5}}]}]}]}]}).encode()  # fmt: skip
    assert post(receiver, body, "application/json", pieces=3) == (200, b"{}")
    status, said = post(receiver, b"\x0a\xff\xff\xff", "application/x-protobuf")
    assert status == 400 and said.startswith(b"OTLP protobuf export does not parse")
    assert post(receiver, b"{", "application/json")[0] == 400
    assert post(receiver, b"{", "application/json")[0] == 400  # the same kind again: counted, said once
    assert post(receiver, b"\0" * (MAX_EXPORT_BYTES + 1), "application/x-protobuf")[0] == 413
    assert receiver.counts.rejected == 4
    assert [problem.split(":")[0] for problem in receiver.new_problems()] == [
        "OTLP protobuf export does not parse", "OTLP JSON export does not parse", "an OTLP export over 32 MiB was "
        "refused"]  # fmt: skip
    assert receiver.new_problems() == []
    assert post(receiver, body, "application/json")[0] == 200  # and it goes on
    assert receiver.take(LEVEL).spans[trace_id]["total_ms"] == 500.0


def test_a_port_in_use_is_one_line(receiver: SpanReceiver) -> None:
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(ConfigError, match=rf"--otlp-listen 127.0.0.1:{port}: cannot listen \(.*in use"):
        SpanReceiver("127.0.0.1", port).start()


def test_otlp_over_grpc() -> None:
    grpc = pytest.importorskip("grpc")
    receiver = SpanReceiver("127.0.0.1", 0, ("127.0.0.1", 0))
    receiver.start()
    try:
        receiver.expect(LEVEL)
        with grpc.insecure_channel(receiver.grpc_target) as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            assert export(encode_spans([span(1), span(2)], "tgi"), timeout=30) == b""  # an empty response
            with pytest.raises(grpc.RpcError) as refused:
                export(b"\x0a\xff\xff\xff", timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "OTLP protobuf export does not parse" in refused.value.details()
            assert export(encode_spans([span(3)], "tgi"), timeout=30) == b""  # and it goes on
        assert set(receiver.take(LEVEL).spans) == {span(i)[0] for i in (1, 2, 3)}
        assert receiver.counts.rejected == 1
    finally:
        receiver.stop()


def test_a_grpc_port_in_use_is_one_line(receiver: SpanReceiver) -> None:
    pytest.importorskip("grpc")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = SpanReceiver("127.0.0.1", 0, ("127.0.0.1", port))
        with pytest.raises(ConfigError, match=rf"^--otlp-grpc-listen 127.0.0.1:{port}: cannot listen \("):
            other.start()
        other.stop()
