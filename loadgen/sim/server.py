"""Simulator: the HTTP server (aiohttp) speaking OpenAI chat/completions and TGI.

Token text is drawn from a small vocabulary, one word per token; the simulated tokenizer counts
prompt tokens as whitespace-separated words. Responses follow vLLM's shapes: a role-only first
delta, content deltas, a finish reason, a usage chunk when ``stream_options.include_usage`` is
set, then ``[DONE]``. ``/sim/log`` returns, for every request, when it arrived and when each chunk
was written (``perf_counter_ns``, the same clock loadgen measures with on the same host).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from loadgen.hardware.roofline import RooflineProfile
from loadgen.sim.batching import BatchingEngine, Sequence, prefix_blocks
from loadgen.sim.profiles import FixedProfile, SimProfile
from loadgen.sim.spans import Account, SpanExporter

VOCABULARY = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "from",
    "at",
    "or",
    "an",
    "which",
    "have",
    "not",
    "but",
    "model",
    "token",
    "latency",
    "batch",
    "memory",
    "server",
    "request",
    "stream",
    "cache",
    "prefill",
    "decode",
    "throughput",
]
DEFAULT_MAX_TOKENS = 256


@dataclass(slots=True)
class SimOptions:
    model: str = "sim-llm"
    api_key: str | None = None
    error_rate: float = 0.0
    break_rate: float = 0.0
    prefix_cache: bool = False  # roofline profiles: prompts' cached leading blocks skip prefill (as vLLM's)
    reasoning_tokens: int = 0  # chat streams: the first N tokens as reasoning_content, as vLLM's reasoning parsers
    seed: int = 0
    keep_log: bool = False
    lean: bool = False  # a fixed profile served by sim.lean (kernel-stamped arrivals) instead of aiohttp
    otlp_endpoint: str | None = None  # export each finished request's span there (OTLP/HTTP), as vLLM does


@dataclass(slots=True)
class RequestLog:
    received_ns: int
    chunk_ns: list[int] = field(default_factory=list)
    end_ns: int | None = None  # just before the closing bytes (usage, [DONE]) were written
    first_word: str = ""  # of the prompt: lets a benchmark match its records with this log
    trace_id: str | None = None  # of its exported span, and the span's attributes
    span: dict[str, float | int] | None = None


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    api: str  # "chat", "completions", "tgi"
    stream: bool
    prompt_tokens: int
    max_tokens: int
    include_usage: bool
    batch: tuple[int, ...] = ()  # prompt tokens of each prompt of a list (completions, not streamed)
    first_word: str = ""
    blocks: tuple[int, ...] = ()  # the prompt's prefix blocks, when the prefix cache is on


class SimServer:
    def __init__(self, profile: SimProfile, options: SimOptions) -> None:
        self.profile = profile
        self.options = options
        self.engine = (BatchingEngine(profile, options.seed, options.prefix_cache)
                       if isinstance(profile, RooflineProfile) else None)  # fmt: skip
        self.log: list[RequestLog] = []
        self._rng = random.Random(options.seed)
        self._request_counter = 0
        self._engine_task: asyncio.Task[None] | None = None
        self.spans = SpanExporter(options.otlp_endpoint) if options.otlp_endpoint else None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/generate", self._tgi)
        app.router.add_post("/generate_stream", self._tgi_stream)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/sim/log", self._log)
        app.on_startup.append(self._start_engine)
        app.on_cleanup.append(self._stop_engine)
        return app

    async def _start_engine(self, app: web.Application) -> None:
        if self.engine is not None:
            self._engine_task = asyncio.ensure_future(self.engine.run())
        if self.spans is not None:
            await self.spans.start()

    async def _stop_engine(self, app: web.Application) -> None:
        if self._engine_task is not None:
            self._engine_task.cancel()
        if self.spans is not None:
            await self.spans.stop()

    def _export_span(self, request: web.Request, account: Account, parsed: ParsedRequest, tokens: int,
                     log: RequestLog) -> None:  # fmt: skip
        """The finished request's span, as vLLM exports one (never for a request cut short)."""
        if self.spans is None:
            return
        end_s = time.perf_counter()
        attributes = account.attributes(end_s, parsed.prompt_tokens, tokens)
        trace_id = self.spans.add(request.headers.get("traceparent"), account.arrival_s, end_s, attributes)
        if self.options.keep_log:
            log.trace_id, log.span = trace_id, attributes

    # --- request parsing -------------------------------------------------------------------

    async def _parse(self, request: web.Request, api: str) -> ParsedRequest | web.Response:
        expected_key = self.options.api_key
        if expected_key is not None and request.headers.get("Authorization") != f"Bearer {expected_key}":
            return _openai_error(401, "Incorrect API key provided.", "authentication_error")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _openai_error(400, "request body is not valid JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _openai_error(400, "request body must be a JSON object", "invalid_request_error")
        batch: tuple[int, ...] = ()
        if api == "tgi":
            parameters = body.get("parameters") or {}
            text = body.get("inputs")
            max_tokens = parameters.get("max_new_tokens", DEFAULT_MAX_TOKENS)
            stream, include_usage = request.path.endswith("_stream"), False
        else:
            model = body.get("model")
            if model is not None and model != self.options.model:
                return _openai_error(404, f"The model `{model}` does not exist.", "NotFoundError")
            if api == "chat":
                messages = body.get("messages")
                if not isinstance(messages, list):
                    return _openai_error(400, "'messages' must be a list", "invalid_request_error")
                text = " ".join(str(message.get("content", "")) for message in messages if isinstance(message, dict))
            else:
                text = body.get("prompt")
                if isinstance(text, list) and text and all(isinstance(item, str) for item in text):
                    if body.get("stream"):
                        return _openai_error(400, "the simulator streams one prompt per request",
                                             "invalid_request_error")  # fmt: skip
                    batch = tuple(max(1, len(item.split())) for item in text)
                    text = " ".join(text)
            max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
            stream = bool(body.get("stream", False))
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if not isinstance(text, str):
            return _openai_error(400, "prompt text missing", "invalid_request_error")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return _openai_error(400, "max tokens must be a positive integer", "invalid_request_error")
        if isinstance(self.profile, FixedProfile) and self.profile.output_tokens:
            max_tokens = self.profile.output_tokens
        words = text.split()
        blocks = prefix_blocks(words) if self.options.prefix_cache else ()
        return ParsedRequest(api, stream, max(1, len(words)), max_tokens, include_usage, batch,
                             words[0][:64] if words else "", blocks)  # fmt: skip

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "chat")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "completions")

    async def _tgi(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, "tgi")

    _tgi_stream = _tgi

    # --- generation ---------------------------------------------------------------------------

    async def _serve(self, request: web.Request, api: str) -> web.StreamResponse:
        log = RequestLog(time.perf_counter_ns())
        account = Account(log.received_ns / 1e9)
        parsed = await self._parse(request, api)
        if isinstance(parsed, web.Response):
            return parsed
        if self.options.error_rate and self._rng.random() < self.options.error_rate:
            return _openai_error(500, "simulated internal error", "InternalServerError")
        if self.options.keep_log:
            log.first_word = parsed.first_word
            self.log.append(log)
        self._request_counter += 1
        request_id = f"sim-{self._request_counter}"
        break_after = None
        if self.options.break_rate and self._rng.random() < self.options.break_rate:
            break_after = self._rng.randint(1, max(1, parsed.max_tokens - 1))
        formatter = _Formatter(parsed, request_id, self.options.model, self.options.reasoning_tokens)
        if not parsed.stream:
            if parsed.batch:  # each prompt of the list is a sequence of its own, as in vLLM
                parts = [dataclasses.replace(parsed, prompt_tokens=tokens, batch=()) for tokens in parsed.batch]
                counts = await asyncio.gather(*(self._count(part) for part in parts))
                return web.json_response(formatter.whole_batch(list(counts)))
            tokens = await self._count(parsed, formatter, account)
            text = "".join(vocabulary_words(0, tokens))
            self._export_span(request, account, parsed, tokens, log)
            return web.json_response(formatter.whole(text, tokens))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        if api == "chat":
            await response.write(formatter.role_chunk())
        position = 0
        try:
            async for count in self._generate(parsed, formatter, account):
                if break_after is not None and position >= break_after:
                    if request.transport is not None:
                        request.transport.close()
                    return response
                last = position + count >= parsed.max_tokens
                frame = formatter.content_chunk(position, count, last)
                if self.options.keep_log:
                    # stamped just before the write: the bytes reach the socket inside write()
                    log.chunk_ns.append(time.perf_counter_ns())
                await response.write(frame)
                position += count
            if self.options.keep_log:
                log.end_ns = time.perf_counter_ns()  # the last bytes (usage, [DONE]) go now
            await response.write(formatter.closing(position))
            await response.write_eof()
            self._export_span(request, account, parsed, position, log)
        except ConnectionError:
            pass  # the client hung up (a cancelled request): its sequence has left the batch
        return response

    async def _count(self, parsed: ParsedRequest, formatter: _Formatter | None = None,
                     account: Account | None = None) -> int:  # fmt: skip
        tokens = 0
        async for count in self._generate(parsed, formatter, account):
            tokens += count
        return int(tokens)

    async def _generate(self, parsed: ParsedRequest, formatter: _Formatter | None = None,
                        account: Account | None = None) -> AsyncIterator[int]:  # fmt: skip
        """Yields the number of new tokens at each moment the profile produces them; ``account``
        gets when the request was queued, scheduled, and given its first and last tokens."""
        profile = self.profile
        account = account if account is not None else Account(time.perf_counter())
        if isinstance(profile, FixedProfile):
            started = account.queued_s = account.scheduled_s = time.perf_counter()
            due = started + profile.ttft_s
            for position in range(parsed.max_tokens):
                await _sleep_until(due)
                account.last_token_s = time.perf_counter()
                if not position:
                    account.first_token_s = account.last_token_s
                yield 1
                due += profile.itl_s
            return
        assert self.engine is not None
        sequence = Sequence(parsed.prompt_tokens, parsed.max_tokens, blocks=parsed.blocks)
        try:
            self.engine.submit(sequence)
        except ValueError:
            raise web.HTTPBadRequest(text=json.dumps({"error": {"message": "prompt too long"}})) from None
        try:
            while True:
                count = await sequence.deliveries.get()
                if formatter is not None and self.options.prefix_cache:
                    formatter.cached_tokens = sequence.cached_tokens  # known once it was admitted
                if count is None:
                    account.queued_s, account.scheduled_s = sequence.queued_s, sequence.scheduled_s
                    account.first_token_s, account.last_token_s = sequence.first_token_s, sequence.last_token_s
                    return
                yield count
        finally:
            if sequence.generated < sequence.max_tokens:
                self.engine.cancel(sequence)

    # --- other endpoints -----------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.options.model, "object": "model"}]})

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _log(self, request: web.Request) -> web.Response:
        return web.json_response([{"received_ns": entry.received_ns, "chunk_ns": entry.chunk_ns,
                                   "end_ns": entry.end_ns, "first_word": entry.first_word,
                                   "trace_id": entry.trace_id, "span": entry.span}
                                  for entry in self.log])  # fmt: skip

    async def _metrics(self, request: web.Request) -> web.Response:
        lines = []
        if self.engine is not None:
            engine, stats = self.engine, self.engine.stats
            model = self.options.model
            gauges = {
                "vllm:num_requests_running": len(engine.running),
                "vllm:num_requests_waiting": len(engine.waiting),
                "vllm:kv_cache_usage_perc": engine._reserved / max(1, engine.profile.kv_capacity_tokens),
            }
            counters = {
                "vllm:generation_tokens_total": stats.tokens_generated,
                "vllm:prompt_tokens_total": stats.prompt_tokens,
                "vllm:request_success_total": stats.requests_finished,
                "vllm:spec_decode_num_draft_tokens_total": stats.draft_tokens_proposed,
                "vllm:spec_decode_num_accepted_tokens_total": stats.draft_tokens_accepted,
                "loadgen_sim:steps_total": stats.steps,
                "loadgen_sim:modelled_step_seconds_total": round(stats.modelled_seconds, 6),
                "loadgen_sim:late_step_seconds_total": round(stats.late_seconds, 6),
            }
            for name, value in gauges.items():
                lines += [f"# TYPE {name} gauge", f'{name}{{model_name="{model}"}} {value}']
            for name, value in counters.items():
                lines += [f"# TYPE {name} counter", f'{name}{{model_name="{model}"}} {value}']
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


async def _sleep_until(due: float) -> None:
    """Sleep until ``perf_counter()`` reaches ``due``, never earlier. Event-loop timers have
    millisecond granularity and may fire early; the last fraction of a millisecond is spent
    yielding to other tasks."""
    remaining = due - time.perf_counter()
    if remaining > 0.001:
        await asyncio.sleep(remaining - 0.001)
    while time.perf_counter() < due:
        await asyncio.sleep(0)


def vocabulary_words(start: int, count: int) -> list[str]:
    size = len(VOCABULARY)
    return [" " + VOCABULARY[(start + offset) % size] for offset in range(count)]


def _openai_error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "code": status}}, status=status)


class _Formatter:
    """Pre-built SSE frames; vocabulary words need no JSON escaping."""

    def __init__(self, parsed: ParsedRequest, request_id: str, model: str, reasoning_tokens: int = 0) -> None:
        self.parsed = parsed
        self.reasoning_tokens = reasoning_tokens if parsed.api == "chat" else 0
        self.reasoning_sent = 0
        self.cached_tokens: int | None = None  # prompt tokens the prefix cache held (None: no cache)
        created = int(time.time())
        if parsed.api == "chat":
            self._head = (
                f'data: {{"id":"{request_id}","object":"chat.completion.chunk","created":{created},'
                f'"model":"{model}","choices":[{{"index":0,"delta":{{"content":"'
            )
            self._reasoning_head = self._head.replace('"delta":{"content":"', '"delta":{"reasoning_content":"')
        else:
            self._head = (
                f'data: {{"id":"{request_id}","object":"text_completion","created":{created},'
                f'"model":"{model}","choices":[{{"index":0,"text":"'
            )
        self._prefix = f'{{"id":"{request_id}","created":{created},"model":"{model}"'
        self._model = model

    def role_chunk(self) -> bytes:
        frame = (
            self._prefix + ',"object":"chat.completion.chunk","choices":[{"index":0,'
            '"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
        )
        return f"data: {frame}\n\n".encode()

    def content_chunk(self, position: int, count: int, last: bool) -> bytes:
        text = "".join(vocabulary_words(position, count))
        if self.parsed.api == "tgi":
            token = json.dumps({"id": position, "text": text, "logprob": -0.5, "special": False})
            details = "null"
            generated = "null"
            if last:
                generated = json.dumps("".join(vocabulary_words(0, position + count)))
                details = json.dumps({"finish_reason": "length", "generated_tokens": position + count, "seed": None})
            return (
                f'data:{{"index":{position},"token":{token},"generated_text":{generated},"details":{details}}}\n\n'
            ).encode()
        finish = '"length"' if last else "null"
        if self.parsed.api == "chat":
            head = self._head
            if position < self.reasoning_tokens and not last:  # thinking first; the last chunk always answers
                head = self._reasoning_head
                self.reasoning_sent += count
            return (head + text + f'"}},"finish_reason":{finish}}}]}}\n\n').encode()
        return (self._head + text + f'","finish_reason":{finish}}}]}}\n\n').encode()

    def closing(self, tokens: int) -> bytes:
        if self.parsed.api == "tgi":
            return b""
        usage = ""
        if self.parsed.include_usage:
            details = ""
            if self.reasoning_sent:
                details += f',"completion_tokens_details":{{"reasoning_tokens":{self.reasoning_sent}}}'
            if self.cached_tokens is not None:
                details += f',"prompt_tokens_details":{{"cached_tokens":{self.cached_tokens}}}'
            usage = (
                f'data: {self._prefix},"choices":[],"usage":{{"prompt_tokens":{self.parsed.prompt_tokens},'
                f'"completion_tokens":{tokens},"total_tokens":{self.parsed.prompt_tokens + tokens}{details}}}}}\n\n'
            )
        return (usage + "data: [DONE]\n\n").encode()

    def whole_batch(self, counts: list[int]) -> dict[str, object]:
        """Completions for a list of prompts: one choice per prompt, usage over all of them."""
        response = self.whole("", sum(counts))
        response["choices"] = [{"index": i, "text": "".join(vocabulary_words(0, n)), "finish_reason": "length"}
                               for i, n in enumerate(counts)]  # fmt: skip
        return response

    def whole(self, text: str, tokens: int) -> dict[str, object]:
        parsed = self.parsed
        if parsed.api == "tgi":
            return {
                "generated_text": text,
                "details": {"finish_reason": "length", "generated_tokens": tokens, "seed": None},
            }
        usage: dict[str, object] = {
            "prompt_tokens": parsed.prompt_tokens,
            "completion_tokens": tokens,
            "total_tokens": parsed.prompt_tokens + tokens,
        }
        if self.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if parsed.api == "chat":
            choice: dict[str, object] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
        else:
            choice = {"index": 0, "text": text, "finish_reason": "length"}
        return {
            "id": "sim",
            "object": "chat.completion" if parsed.api == "chat" else "text_completion",
            "model": self._model,
            "choices": [choice],
            "usage": usage,
        }
