"""A local SageMaker runtime for tests: checks SigV4 signatures with botocore and answers with
LMI JSON lines, streamed in real event-stream frames whose payload parts split lines anywhere.

Also serves ``POST /invocations`` (a local LMI container: no signature, JSON lines) and ``GET
/ping``. Each token takes ``token_delay_s``; ``fail_after`` tokens, if set, ends a stream with a
ModelStreamError.
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.aws_eventstream import model_stream_error, payload_part
from tests.threaded_server import serve_in_thread

AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/sagemaker/aws4_request, "
                  r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})")  # fmt: skip


@dataclass
class EmulatorOptions:
    access_key: str = "AKIDEXAMPLE"
    secret_key: str = "emulator-secret-key"
    region: str = "us-east-1"
    token_delay_s: float = 0.002
    fail_after: int | None = None


def signature_ok(request: web.Request, body: bytes, options: EmulatorOptions) -> bool:
    match = AUTH.fullmatch(request.headers.get("Authorization", ""))
    if not match or match.group(1) != options.access_key or match.group(3) != options.region:
        return False
    signed = match.group(4).split(";")
    url = f"http://{request.host}{request.raw_path}"
    headers = {name: request.headers[name] for name in signed if name in request.headers}
    aws_request = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    aws_request.context["timestamp"] = request.headers.get("X-Amz-Date", "")
    signer = SigV4Auth(Credentials(options.access_key, options.secret_key), "sagemaker", options.region)
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    return expected == match.group(5)


def lmi_lines(count: int) -> list[bytes]:
    lines = [json.dumps({"token": {"id": i, "text": f" t{i}", "log_prob": -0.1 * (i + 1)}, "generated_text": None,
                         "details": None}).encode() + b"\n" for i in range(count - 1)]  # fmt: skip
    last = {"token": {"id": count, "text": f" t{count - 1}", "log_prob": -0.05}, "generated_text": "…",
            "details": {"finish_reason": "length", "generated_tokens": count}}  # fmt: skip
    return [*lines, json.dumps(last).encode() + b"\n"]


def openai_lines(count: int) -> list[bytes]:
    lines = [b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n']
    for i in range(count):
        finish = '"length"' if i == count - 1 else "null"
        lines.append(
            f'data: {{"choices":[{{"index":0,"delta":{{"content":" t{i}"}},"finish_reason":{finish}}}]}}\n\n'.encode()
        )
    lines.append(
        f'data: {{"choices":[],"usage":{{"prompt_tokens":3,"completion_tokens":{count}}}}}\n\ndata: [DONE]\n\n'.encode()
    )
    return lines


def tgi_lines(count: int) -> list[bytes]:
    lines = [f'data:{{"token":{{"id":{i},"text":" t{i}","logprob":-0.2,"special":false}},"generated_text":null,'
             f'"details":null}}\n\n'.encode() for i in range(count - 1)]  # fmt: skip
    lines.append(f'data:{{"token":{{"id":{count},"text":" end","logprob":-0.2,"special":false}},"generated_text":"…",'
                 f'"details":{{"finish_reason":"length","generated_tokens":{count}}}}}\n\n'.encode())  # fmt: skip
    return lines


def response_lines(payload: dict, request: web.Request) -> list[bytes]:  # type: ignore[type-arg]
    """What the container streams: OpenAI SSE for chat messages; TGI SSE when the custom attributes
    ask for it (a container configured for TGI's format); LMI JSON lines otherwise."""
    if "messages" in payload:
        return openai_lines(payload["max_tokens"])
    tokens = payload["parameters"]["max_new_tokens"]
    if request.headers.get("X-Amzn-SageMaker-Custom-Attributes") == "format=tgi":
        return tgi_lines(tokens)
    return lmi_lines(tokens)


def app(options: EmulatorOptions) -> web.Application:
    async def invoke(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if not signature_ok(request, body, options):
            message = ("The request signature we calculated does not match the signature you provided. Check your "
                       "AWS Secret Access Key and signing method.")  # fmt: skip
            return web.json_response({"message": message}, status=403,
                                     headers={"x-amzn-ErrorType": "InvalidSignatureException"})  # fmt: skip
        if request.match_info["name"] != "my-endpoint":
            message = f"Endpoint {request.match_info['name']} not found."
            return web.json_response({"ErrorCode": "ValidationError", "Message": message}, status=404)
        payload = json.loads(body)
        tokens = payload["max_tokens"] if "messages" in payload else payload["parameters"]["max_new_tokens"]
        if request.path.endswith("-response-stream"):
            response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
            await response.prepare(request)
            pending = b""
            for number, line in enumerate(response_lines(payload, request)):
                await asyncio.sleep(options.token_delay_s)
                if options.fail_after is not None and number >= options.fail_after:
                    await response.write(payload_part(pending) + model_stream_error("CUDA out of memory"))
                    return response
                data = pending + line
                cut = len(data) * 2 // 3  # payload parts split lines mid-way
                await response.write(payload_part(data[:cut]))
                pending = data[cut:]
            await response.write(payload_part(pending))
            await response.write_eof()
            return response
        await asyncio.sleep(options.token_delay_s * tokens)
        return web.json_response({"generated_text": " t" * tokens,
                                  "details": {"finish_reason": "length", "generated_tokens": tokens}})  # fmt: skip

    async def local_invocations(request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        tokens = payload["parameters"]["max_new_tokens"]
        if not payload.get("stream"):
            return web.json_response({"generated_text": " t" * tokens})
        response = web.StreamResponse(headers={"Content-Type": "application/jsonlines"})
        await response.prepare(request)
        for line in lmi_lines(tokens):
            await asyncio.sleep(options.token_delay_s)
            await response.write(line)
        await response.write_eof()
        return response

    async def ping(request: web.Request) -> web.Response:
        return web.json_response({})

    application = web.Application()
    application.router.add_post(r"/endpoints/{name}/invocations-response-stream", invoke)
    application.router.add_post(r"/endpoints/{name}/invocations", invoke)
    application.router.add_post("/invocations", local_invocations)
    application.router.add_get("/ping", ping)
    return application


def running_emulator(options: EmulatorOptions) -> AbstractContextManager[str]:
    """The emulator on 127.0.0.1 (a free port) in a thread of its own; stopped on exit."""
    return serve_in_thread(app(options))
