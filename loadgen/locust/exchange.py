"""Locust mode: one request over a blocking HTTP session (gevent-patched ``requests`` under
Locust), decoded by the same codecs and recorded with the same ``Attempt``/``to_record`` as the
asyncio engine. Each body read is stamped on arrival, before it is decoded.

``iter_content(None)`` yields each HTTP chunk as it arrives, which is how streaming servers send
(chunked transfer encoding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import requests

from loadgen.clock import MonotonicClock
from loadgen.engine.request import ERROR_BODY_LIMIT_BYTES, Attempt, to_record
from loadgen.errors import ErrorKind, ProtocolError
from loadgen.parsing import url_with_path
from loadgen.prompts import Prompt
from loadgen.protocols.base import Codec, Decoder, GenerationParams
from loadgen.records import RequestRecord
from loadgen.tokenizer import TokenCounter


@dataclass(frozen=True)
class BlockingContext:
    base_url: str
    codec: Codec
    params: GenerationParams
    headers: dict[str, str]
    connect_timeout_s: float
    read_timeout_s: float  # the longest silence between bytes (first-token timeout)
    run_start_ns: int
    token_counter: TokenCounter | None
    redact: Callable[[str], str]
    save_text: bool = False
    verify_tls: bool = True
    total_timeout_s: float = 600.0  # --request-timeout: the longest a request may take in all


def exchange(session: requests.Session, ctx: BlockingContext, index: int, prompt: Prompt,
             on_cancelled: Callable[[RequestRecord], None] | None = None) -> RequestRecord:  # fmt: skip
    """One request, its record returned. Stopped mid-request (Locust kills the user's greenlet at
    the end of a test), it is recorded as cancelled through ``on_cancelled`` before the stop goes on."""
    now_ns = MonotonicClock.now_ns
    attempt = Attempt(ctx.token_counter is not None or ctx.save_text or prompt.expected is not None, ctx.redact)
    # no send stamp: ``requests`` does not say when the request's last byte left, so the record
    # has no send lag rather than a made-up zero
    intended_ns = now_ns()
    try:
        _exchange(session, ctx, prompt, attempt, now_ns, intended_ns + round(ctx.total_timeout_s * 1e9))
    except BaseException:  # GreenletExit or KeyboardInterrupt: the test stopped under this request
        attempt.fail(ErrorKind.CANCELLED, "cancelled when the test stopped")
        attempt.end_ns = now_ns()
        if on_cancelled is not None:
            on_cancelled(to_record(ctx.run_start_ns, ctx.token_counter, ctx.save_text, index, prompt, intended_ns,
                                   False, attempt))  # fmt: skip
        raise
    if attempt.end_ns is None:
        attempt.end_ns = now_ns()
    return to_record(ctx.run_start_ns, ctx.token_counter, ctx.save_text, index, prompt, intended_ns, False, attempt)


def _exchange(session: requests.Session, ctx: BlockingContext, prompt: Prompt, attempt: Attempt,
              now_ns: Callable[[], int], deadline_ns: int) -> None:  # fmt: skip
    request = ctx.codec.build_request(prompt, ctx.params)
    decoder = ctx.codec.decoder(ctx.params.config.stream, prompt)
    try:
        headers = {**ctx.headers, **dict(request.headers)}
        response = session.request(
            request.method, url_with_path(ctx.base_url, request.path), data=request.body, headers=headers, stream=True,
            timeout=(ctx.connect_timeout_s, ctx.read_timeout_s), verify=ctx.verify_tls,
            allow_redirects=False,  # a redirect would carry the key to another host; it counts as an error
        )  # fmt: skip
    except requests.Timeout:
        attempt.fail(ErrorKind.TIMEOUT, f"no response within {ctx.read_timeout_s:g}s")
    except requests.ConnectionError as exc:
        attempt.fail(ErrorKind.CONNECT, ctx.redact(f"cannot connect: {_describe(exc)}"))
    else:
        with response:
            _read(response, ctx, attempt, decoder, now_ns, deadline_ns)


def _read(response: requests.Response, ctx: BlockingContext, attempt: Attempt, decoder: Decoder,
          now_ns: Callable[[], int], deadline_ns: int) -> None:  # fmt: skip
    attempt.http_status = response.status_code
    try:
        if response.status_code >= 300:
            body = response.raw.read(ERROR_BODY_LIMIT_BYTES, decode_content=True)
            attempt.end_ns = now_ns()
            message = ctx.codec.error_message(response.status_code, body)
            attempt.fail(ErrorKind.from_http_status(response.status_code),
                         ctx.redact(f"HTTP {response.status_code}: {message}"))  # fmt: skip
            return
        for data in response.iter_content(chunk_size=None):
            t_ns = now_ns()
            if attempt.on_read(decoder.feed(data), t_ns):
                break
            if t_ns > deadline_ns:
                attempt.end_ns = t_ns
                attempt.fail(ErrorKind.TIMEOUT, f"timed out: the request took over {ctx.total_timeout_s:g}s "
                                                "(--request-timeout)")  # fmt: skip
                return
        end_ns = attempt.end_ns if attempt.complete and attempt.end_ns is not None else now_ns()
        attempt.end_ns = end_ns
        attempt.apply(decoder.close(), end_ns)
    except requests.Timeout:
        attempt.fail(ErrorKind.TIMEOUT, f"no bytes for {ctx.read_timeout_s:g}s")
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        attempt.fail(ErrorKind.STREAM_BROKEN, ctx.redact(f"stream broken: {_describe(exc)}"))
    except ProtocolError as exc:
        attempt.fail(ErrorKind.PROTOCOL_ERROR, ctx.redact(str(exc)))


def _describe(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())  # shortened after redaction
