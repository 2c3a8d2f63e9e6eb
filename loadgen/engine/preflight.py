"""Engine layer: one small request before the load, so that an unreachable endpoint, a refused
API key or an unknown model is one clear error instead of a run full of failures."""

from __future__ import annotations

import dataclasses
import json

from loadgen.engine.request import RequestContext, execute_request
from loadgen.errors import EndpointError, ErrorKind
from loadgen.prompts import Prompt
from loadgen.protocols.base import HttpRequest
from loadgen.records import RequestRecord
from loadgen.transport.base import Transport, TransportFailure

PREFLIGHT_ATTEMPTS = 3
# tried again; a timeout is not: it has already waited the whole --first-token-timeout
TRANSIENT = (ErrorKind.HTTP_5XX, ErrorKind.STREAM_BROKEN, ErrorKind.SERVER_ERROR)


async def discover_model(transport: Transport, url: str) -> str | None:
    """The single model an OpenAI-compatible server lists at ``/v1/models``, if it lists one."""
    try:
        response = await transport.open(HttpRequest("GET", "/v1/models", (), b""))
        body = await response.read_body(1 << 20)
    except TransportFailure as failure:
        raise EndpointError(f"cannot reach {url}: {failure.message}") from None
    if response.status >= 500:  # a broken server, not one without the route: never guess silently
        raise EndpointError(f"{url}/v1/models answered HTTP {response.status} when asked which model it serves: "
                            "give --model")  # fmt: skip
    if response.status != 200:
        return None
    try:
        models = [entry["id"] for entry in json.loads(body)["data"]]
    except (ValueError, KeyError, TypeError):
        return None
    if len(models) == 1:
        return str(models[0])
    if models:
        raise EndpointError(f"{url} serves several models ({', '.join(map(str, models[:8]))}): choose one with --model")
    return None


async def preflight(ctx: RequestContext, prompt: Prompt, url: str, api: str) -> RequestRecord:
    """The run's own request (its max tokens, ignore-eos and every other field, so a server that
    refuses them says so now), read until its first token when streamed."""
    probe = dataclasses.replace(ctx, stop_at_first_token=True)
    records: list[RequestRecord] = []
    for _ in range(PREFLIGHT_ATTEMPTS):
        await execute_request(probe, -1, prompt, ctx.clock.now_ns(), True, records.append)
        if records[-1].error_kind not in TRANSIENT:
            break
    record = records[-1]
    kind, message, status = record.error_kind, record.error or "", record.http_status
    if kind is None:
        return record
    if kind is ErrorKind.CONNECT:
        raise EndpointError(f"cannot reach {url}: {message}")
    if status in (401, 403):
        raise EndpointError(f"{url} refused the credentials ({message}); check --api-key-env / --header")
    if status == 404:
        model = ctx.params.model
        unknown = f"unknown model {model!r} or not" if model else "not"
        raise EndpointError(f"{url} answered 404 ({message}): {unknown} an --api {api} endpoint (check the URL's path)")
    attempts = f" {len(records)} times" if len(records) > 1 else ""
    raise EndpointError(f"preflight request to {url} failed{attempts} ({kind.value}): {message}")
