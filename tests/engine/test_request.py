import asyncio

from loadgen.clock import FakeClock
from loadgen.engine.request import execute_request
from loadgen.errors import ErrorKind
from loadgen.records import RequestRecord, TokenMethod
from loadgen.transport.base import TransportFailure
from loadgen.transport.memory import ScriptedResponse
from tests.engine.conftest import PROMPTS, make_context, sse_stream

MS = 1_000_000


def execute(context, intended_ns: int | None = None) -> RequestRecord:  # type: ignore[no-untyped-def]
    records: list[RequestRecord] = []
    intended = context.clock.now_ns() if intended_ns is None else intended_ns
    asyncio.run(execute_request(context, 0, PROMPTS[0], intended, False, records.append))
    return records[0]


def test_exact_timings_on_a_fake_clock() -> None:
    clock = FakeClock(start_ns=1_000 * MS)
    context = make_context(lambda request: sse_stream(ttft_s=0.050, itl_s=0.010, tokens=5), clock)
    record = execute(context)
    assert record.ok
    assert record.intended_ns == 0
    assert record.first_token_ns == 50 * MS
    assert record.chunk_ns == [50 * MS, 60 * MS, 70 * MS, 80 * MS, 90 * MS]
    assert record.end_ns == 90 * MS
    assert record.output_tokens == 5
    assert record.output_token_method is TokenMethod.SERVER_USAGE
    assert record.input_tokens == 3
    assert record.finish_reason is None


def test_intended_time_before_send_counts_in_latency() -> None:
    clock = FakeClock(start_ns=1_000 * MS)
    context = make_context(lambda request: sse_stream(0.050, 0.010, 2), clock)
    record = execute(context, intended_ns=context.run_start_ns - 30 * MS)
    assert record.intended_ns == -30 * MS
    assert record.sent_ns == 0
    assert record.first_token_ns - record.intended_ns == 80 * MS


def test_without_usage_tokens_are_counted_by_chunks() -> None:
    context = make_context(lambda request: sse_stream(0.0, 0.0, 4, usage=False), FakeClock())
    record = execute(context)
    assert record.output_tokens == 4
    assert record.output_token_method is TokenMethod.CONTENT_CHUNKS
    assert record.input_token_method is TokenMethod.UNAVAILABLE


def test_http_error_status_is_counted_with_the_server_message() -> None:
    body = b'{"error":{"message":"The model `m` does not exist."}}'
    context = make_context(lambda request: ScriptedResponse(status=404, pieces=((0, body),)), FakeClock())
    record = execute(context)
    assert record.error_kind is ErrorKind.HTTP_4XX
    assert record.http_status == 404
    assert record.error == "HTTP 404: The model `m` does not exist."
    server = make_context(lambda request: ScriptedResponse(status=503, pieces=((0, b"overloaded"),)), FakeClock())
    assert execute(server).error_kind is ErrorKind.HTTP_5XX


def test_broken_stream_keeps_what_arrived() -> None:
    scripted = sse_stream(0.01, 0.01, 10)
    broken = ScriptedResponse(pieces=scripted.pieces, break_after=4)
    record = execute(make_context(lambda request: broken, FakeClock()))
    assert record.error_kind is ErrorKind.STREAM_BROKEN
    assert len(record.chunk_ns) == 4


def test_truncated_stream_is_a_protocol_error() -> None:
    scripted = sse_stream(0.01, 0.01, 3)
    truncated = ScriptedResponse(pieces=scripted.pieces[:2])
    record = execute(make_context(lambda request: truncated, FakeClock()))
    assert record.error_kind is ErrorKind.PROTOCOL_ERROR
    assert "[DONE]" in (record.error or "")


def test_connect_failure() -> None:
    failure = TransportFailure(ErrorKind.CONNECT, "cannot connect: refused")
    record = execute(make_context(lambda request: failure, FakeClock()))
    assert record.error_kind is ErrorKind.CONNECT
    assert record.first_token_ns is None


def test_first_token_timeout() -> None:
    context = make_context(lambda request: sse_stream(ttft_s=0.5, itl_s=0.0, tokens=2), first_token_timeout_s=0.05)
    record = execute(context)
    assert record.error_kind is ErrorKind.TIMEOUT
    assert "first-token timeout" in (record.error or "")


def test_error_messages_are_redacted() -> None:
    body = b'{"error":"bad key sk-secret-123"}'
    context = make_context(lambda request: ScriptedResponse(status=401, pieces=((0, body),)), FakeClock())
    context = context.__class__(
        **{
            **{f: getattr(context, f) for f in context.__slots__},
            "redact": lambda text: text.replace("sk-secret-123", "***"),
        }
    )
    assert execute(context).error == "HTTP 401: bad key ***"


def test_a_redirect_is_its_own_error_kind_and_is_not_followed() -> None:

    redirect = ScriptedResponse(status=307, headers=(("location", "http://user:pw@169.254.169.254/latest?key=k"),))
    context = make_context(lambda request: redirect)
    records: list[RequestRecord] = []
    asyncio.run(execute_request(context, 0, PROMPTS[0], 0, False, records.append))
    assert records[0].error_kind is ErrorKind.REDIRECT
    assert "redirect to http://169.254.169.254/latest, not followed" in (records[0].error or "")
    assert "pw" not in (records[0].error or "") and "key=k" not in (records[0].error or "")
    assert len(context.transport.requests) == 1  # type: ignore[attr-defined]


def test_an_html_page_for_a_streamed_request_is_named() -> None:

    page = ScriptedResponse(content_type="text/html; charset=utf-8", pieces=((0.0, b"<html>login</html>"),))
    records: list[RequestRecord] = []
    asyncio.run(execute_request(make_context(lambda request: page), 0, PROMPTS[0], 0, False, records.append))
    assert records[0].error_kind is ErrorKind.PROTOCOL_ERROR and "HTML page" in (records[0].error or "")
