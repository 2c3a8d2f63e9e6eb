"""The gRPC transport against a real grpc.aio server on 127.0.0.1: messages stamped as they
arrive, status codes mapped to error kinds, deadlines, aborts and an unreachable server."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest

from loadgen.clock import MonotonicClock
from loadgen.errors import ErrorKind
from loadgen.protocols.base import GRPC_STREAM, GRPC_UNARY, HttpRequest
from loadgen.transport.base import TransportFailure
from loadgen.transport.grpc import GrpcTransport, grpc_target
from tests.conftest import free_port

BIG_BYTES = 3 << 20  # over the transport's limit in these tests
LIMIT_BYTES = 2 << 20


async def _stream(request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    request = b"".join([message async for message in request_iterator])
    if request == b"big":
        yield b"x" * BIG_BYTES
    if request == b"fail-midway":
        yield b"one"
        await context.abort(grpc.StatusCode.INTERNAL, "model crashed")
    for index in range(3):
        await asyncio.sleep(0.02)
        yield f"{request.decode()}-{index}".encode()


async def _unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    if request == b"missing":
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such model")
    if request == b"slow":
        await asyncio.sleep(2)
    if request == b"big":
        return b"x" * BIG_BYTES
    return request[::-1]


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler("test.Echo", {
        "Stream": grpc.stream_stream_rpc_method_handler(_stream),
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
    })  # fmt: skip


async def _with_server(check) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_handlers(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    transport = GrpcTransport(f"grpc://127.0.0.1:{port}", MonotonicClock(), max_streams=8, headers={},
                              total_timeout_s=10, first_response_timeout_s=0.5,
                              max_message_bytes=LIMIT_BYTES)  # fmt: skip
    try:
        await check(transport)
    finally:
        await transport.close()
        await server.stop(None)


def test_stream_messages_arrive_whole_and_stamped() -> None:
    async def check(transport: GrpcTransport) -> None:
        response = await transport.open(HttpRequest(GRPC_STREAM, "/test.Echo/Stream", (), b"hi"))
        assert response.status == 200
        received = [item async for item in response.chunks()]
        assert [data for _, data in received] == [b"hi-0", b"hi-1", b"hi-2"]
        stamps = [t for t, _ in received]
        assert all(later - earlier >= 15_000_000 for earlier, later in itertools.pairwise(stamps))

    asyncio.run(_with_server(check))


def test_stream_error_midway_is_a_counted_failure() -> None:
    async def check(transport: GrpcTransport) -> None:
        response = await transport.open(HttpRequest(GRPC_STREAM, "/test.Echo/Stream", (), b"fail-midway"))
        chunks = response.chunks()
        assert (await chunks.__anext__())[1] == b"one"
        with pytest.raises(TransportFailure) as failure:
            await chunks.__anext__()
        assert failure.value.kind is ErrorKind.SERVER_ERROR and "model crashed" in failure.value.message

    asyncio.run(_with_server(check))


def test_unary_status_codes_deadline_and_abort() -> None:
    async def check(transport: GrpcTransport) -> None:
        reply = await transport.open(HttpRequest(GRPC_UNARY, "/test.Echo/Unary", (), b"abc"))
        assert [data async for _, data in reply.chunks()] == [b"cba"]
        missing = await transport.open(HttpRequest(GRPC_UNARY, "/test.Echo/Unary", (), b"missing"))
        assert missing.status == 404 and b"no such model" in await missing.read_body(1000)
        with pytest.raises(TransportFailure) as failure:
            await transport.open(HttpRequest(GRPC_UNARY, "/test.Echo/Unary", (), b"slow"))
        assert failure.value.kind is ErrorKind.TIMEOUT  # the first-response deadline, not the total
        response = await transport.open(HttpRequest(GRPC_STREAM, "/test.Echo/Stream", (), b"x"))
        response.abort()  # what the engine's first-token timer does
        with pytest.raises(TransportFailure) as aborted:
            _ = [item async for item in response.chunks()]
        assert aborted.value.kind is ErrorKind.STREAM_BROKEN

    asyncio.run(_with_server(check))


def test_a_reply_over_the_message_limit_is_a_protocol_error_never_held_whole() -> None:
    """Before: no receive limit (one 800 MB message took 3.5 GB)."""

    async def check(transport: GrpcTransport) -> None:
        with pytest.raises(TransportFailure) as unary:
            await transport.open(HttpRequest(GRPC_UNARY, "/test.Echo/Unary", (), b"big"))
        assert unary.value.kind is ErrorKind.PROTOCOL_ERROR and "larger than max" in unary.value.message
        response = await transport.open(HttpRequest(GRPC_STREAM, "/test.Echo/Stream", (), b"big"))
        with pytest.raises(TransportFailure) as streamed:
            _ = [item async for item in response.chunks()]
        assert streamed.value.kind is ErrorKind.PROTOCOL_ERROR

    asyncio.run(_with_server(check))


def test_unreachable_server_is_a_connect_failure() -> None:
    async def check() -> None:
        transport = GrpcTransport(f"grpc://127.0.0.1:{free_port()}", MonotonicClock(), max_streams=1, headers={},
                                  total_timeout_s=2)  # fmt: skip
        try:
            with pytest.raises(TransportFailure) as failure:
                await transport.open(HttpRequest(GRPC_UNARY, "/test.Echo/Unary", (), b"x"))
            assert failure.value.kind is ErrorKind.CONNECT
        finally:
            await transport.close()

    asyncio.run(check())


@pytest.mark.parametrize(
    ("url", "expected"),
    [("grpc://triton:8001", ("triton:8001", False)), ("grpcs://h", ("h:443", True)),
     ("10.0.0.2:9000", ("10.0.0.2:9000", False)), ("grpc://[::1]:8001", ("[::1]:8001", False))],
)  # fmt: skip
def test_grpc_targets(url: str, expected: tuple[str, bool]) -> None:
    assert grpc_target(url) == expected
