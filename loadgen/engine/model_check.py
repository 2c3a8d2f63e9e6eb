"""Engine layer: before any load, fetch a Triton model's metadata and check the requests fit it,
so that a wrong model name, version, tensor name or datatype is one clear error."""

from __future__ import annotations

from loadgen.errors import EndpointError, ProtocolError
from loadgen.protocols.triton import (
    ModelSignature,
    TritonOptions,
    metadata_requests,
    signature_from_replies,
    signature_problems,
)
from loadgen.transport.base import Transport, TransportFailure

METADATA_LIMIT_BYTES = 4 << 20


async def _get(transport: Transport, request_index: int, api: str, model: str, version: str | None,
               url: str) -> tuple[int, bytes]:  # fmt: skip
    request = metadata_requests(api, model, version)[request_index]
    try:
        response = await transport.open(request)
        if response.status >= 300:
            return response.status, await response.read_body(METADATA_LIMIT_BYTES)
        body = b"".join([data async for _, data in response.chunks()])
    except TransportFailure as failure:
        raise EndpointError(f"cannot reach {url}: {failure.message}") from None
    return response.status, body


async def fetch_signature(transport: Transport, api: str, model: str | None, options: TritonOptions,
                          url: str) -> ModelSignature:  # fmt: skip
    if not model:
        raise EndpointError(f"--api {api}: give --model, the Triton model's name")
    version = options.model_version
    status, body = await _get(transport, 0, api, model, version, url)
    if status >= 300:
        detail = " ".join(body.decode("utf-8", "replace").split())[:200]
        what = f"model {model!r}" + (f" version {version}" if version else "")
        if status in (400, 404):
            raise EndpointError(f"{url} has no {what} ready ({detail}); check --model and triton.model_version")
        raise EndpointError(f"{url}: metadata of {what} failed with status {status}: {detail}")
    config_status, config_body = await _get(transport, 1, api, model, version, url)
    try:
        return signature_from_replies(api, body, config_body if config_status < 300 else None)
    except ProtocolError as exc:
        raise EndpointError(f"{url}: unexpected metadata for model {model!r}: {exc}") from None


async def check_triton_model(transport: Transport, api: str, model: str | None, options: TritonOptions,
                             stream: bool, url: str) -> ModelSignature:  # fmt: skip
    signature = await fetch_signature(transport, api, model, options, url)
    problems = signature_problems(options, signature, api, stream)
    if problems:
        raise EndpointError(f"{url}: " + "; ".join(problems))
    return signature
