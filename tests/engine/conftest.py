from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from loadgen.clock import Clock, MonotonicClock
from loadgen.config import GenerationConfig, LoadConfig
from loadgen.engine.request import RequestContext
from loadgen.engine.runner import LoadRunner, RunOutcome
from loadgen.prompts import Prompt, PromptPicker
from loadgen.protocols import get_codec
from loadgen.protocols.base import GenerationParams, HttpRequest
from loadgen.records import RequestRecord
from loadgen.transport.base import TransportFailure
from loadgen.transport.memory import MemoryTransport, ScriptedResponse

PROMPTS = [Prompt(f"p{i}", text=f"prompt number {i}") for i in range(5)]


def sse_stream(ttft_s: float, itl_s: float, tokens: int, usage: bool = True) -> ScriptedResponse:
    pieces = [(ttft_s, _chunk("tok"))]
    pieces += [(itl_s, _chunk("tok")) for _ in range(tokens - 1)]
    tail = b""
    if usage:
        tail += b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":%d}}\n\n' % tokens
    pieces.append((0.0, tail + b"data: [DONE]\n\n"))
    return ScriptedResponse(pieces=tuple(pieces))


def _chunk(text: str) -> bytes:
    return (
        "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}) + "\n\n"
    ).encode()


def make_context(
    handler: Callable[[HttpRequest], ScriptedResponse | TransportFailure],
    clock: Clock | None = None,
    first_token_timeout_s: float = 60.0,
) -> RequestContext:
    clock = clock or MonotonicClock()
    return RequestContext(
        codec=get_codec("openai-chat"),
        params=GenerationParams("m", GenerationConfig(max_tokens=8)),
        transport=MemoryTransport(handler, clock),
        clock=clock,
        run_start_ns=clock.now_ns(),
        first_token_timeout_s=first_token_timeout_s,
        token_counter=None,
        redact=lambda text: text,
    )


def run_load(
    load: LoadConfig, context: RequestContext, stop_after_s: float | None = None
) -> tuple[RunOutcome, list[RequestRecord]]:
    records: list[RequestRecord] = []

    async def main() -> RunOutcome:
        stop = asyncio.Event()
        if stop_after_s is not None:
            asyncio.get_running_loop().call_later(stop_after_s, stop.set)
        runner = LoadRunner(load, context, PromptPicker(PROMPTS, seed=0), records.append, stop)
        return await runner.run()

    outcome = asyncio.run(main())
    return outcome, records
