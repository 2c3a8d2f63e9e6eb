"""Transport layer: HTTP/1.1 over aiohttp, one session and one connection pool per run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Iterator

import aiohttp

from loadgen.clock import Clock
from loadgen.errors import ErrorKind
from loadgen.protocols.base import HttpRequest
from loadgen.transport.base import TransportFailure

READ_BUFFER_BYTES = 1 << 20


class HttpResponseStream:
    def __init__(self, response: aiohttp.ClientResponse, clock: Clock) -> None:
        self._response = response
        self._clock = clock
        self.status = response.status
        self.content_type = response.headers.get("Content-Type", "")

    async def chunks(self) -> AsyncGenerator[tuple[int, bytes], None]:
        now_ns = self._clock.now_ns
        content = self._response.content
        with self._reading():
            while True:
                data = await content.readany()
                if not data:
                    return
                yield now_ns(), data

    async def read_body(self, limit_bytes: int) -> bytes:
        with self._reading():
            return await self._response.content.read(limit_bytes)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Maps aiohttp's read errors to ``TransportFailure``; always releases the connection."""
        try:
            yield
        except asyncio.TimeoutError:
            raise TransportFailure(ErrorKind.TIMEOUT, "timed out reading the response") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise TransportFailure(ErrorKind.STREAM_BROKEN, f"stream broken: {_describe(exc)}") from None
        finally:
            self._response.release()

    def abort(self) -> None:
        self._response.close()


class HttpTransport:
    """aiohttp client sized to the load; TLS verification on unless the user turns it off.

    ``read_timeout_s`` is the longest silence allowed while waiting for headers or bytes.
    """

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        max_connections: int,
        headers: dict[str, str],
        connect_timeout_s: float,
        read_timeout_s: float,
        total_timeout_s: float,
        verify_tls: bool = True,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._clock = clock
        self._headers = headers
        self._max_connections = max_connections
        self._verify_tls = verify_tls
        self._timeout = aiohttp.ClientTimeout(
            total=total_timeout_s, sock_connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                ssl=self._verify_tls,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers=self._headers,
                read_bufsize=READ_BUFFER_BYTES,
                auto_decompress=True,
                trust_env=False,
            )
        return self._session

    async def open(self, request: HttpRequest) -> HttpResponseStream:
        session = self._get_session()
        try:
            response = await session.request(
                request.method,
                self._base_url + request.path,
                data=request.body,
                headers=dict(request.headers),
            )
        except asyncio.TimeoutError:
            raise TransportFailure(ErrorKind.TIMEOUT, "timed out waiting for the response headers") from None
        except (aiohttp.ClientConnectorError, aiohttp.ClientSSLError) as exc:
            raise TransportFailure(ErrorKind.CONNECT, f"cannot connect: {_describe(exc)}") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise TransportFailure(ErrorKind.STREAM_BROKEN, f"connection failed: {_describe(exc)}") from None
        return HttpResponseStream(response, self._clock)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:200]
