"""A real Triton server with loadgen's test models, started by the Triton integration tests.

Runs in its own virtual environment (nvidia-pytriton needs numpy<2); the tests wait for Triton's
readiness API to report every model ready. SIGTERM stops it. Models:

- ``stream`` (decoupled): ``text_input``, ``max_tokens`` → one ``text_output`` per token, the
  first after ``--ttft-ms`` and the rest ``--itl-ms`` apart. ``fail_after`` (optional INT32)
  raises an error after that many tokens.
- ``text`` (not decoupled): the whole answer in one response after ttft + n × itl.
- ``batched`` (dynamic batching, max_batch_size 8): the same as ``text``, batched by Triton.
- ``ft`` (FasterTransformer/NeMo style): INT32 ``input_ids`` [-1], ``input_lengths`` [1],
  ``request_output_len`` [1] → ``output_ids`` after ttft + n × itl.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")


def _token(i: int) -> str:
    return WORDS[i % len(WORDS)] + " "


def _scalar(request, name: str, default: int) -> int:
    if name not in request:
        return default
    return int(np.asarray(request[name]).reshape(-1)[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--itl-ms", type=float, default=10.0)
    parser.add_argument("--default-tokens", type=int, default=16)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    args = parser.parse_args()
    ttft_s, itl_s = args.ttft_ms / 1000, args.itl_ms / 1000

    async def stream(requests):
        request = requests[0]
        max_tokens = _scalar(request, "max_tokens", args.default_tokens)
        fail_after = _scalar(request, "fail_after", -1)
        await asyncio.sleep(ttft_s)
        for i in range(max_tokens):
            if i == fail_after:
                raise ValueError(f"test model failed after {fail_after} tokens")
            if i:
                await asyncio.sleep(itl_s)
            yield [{"text_output": np.array([_token(i).encode()], dtype=object)}]

    async def text(requests):
        responses = []
        for request in requests:
            max_tokens = _scalar(request, "max_tokens", args.default_tokens)
            await asyncio.sleep(ttft_s + itl_s * max(max_tokens - 1, 0))
            answer = "".join(_token(i) for i in range(max_tokens))
            responses.append({"text_output": np.array([answer.encode()], dtype=object)})
        return responses

    @batch
    def batched(text_input, max_tokens):
        count = int(max_tokens.max())
        threading.Event().wait(ttft_s + itl_s * max(count - 1, 0))
        answer = "".join(_token(i) for i in range(count)).encode()
        return {"text_output": np.array([[answer]] * len(text_input), dtype=object)}

    async def ft(requests):
        responses = []
        for request in requests:
            count = _scalar(request, "request_output_len", args.default_tokens)
            await asyncio.sleep(ttft_s + itl_s * max(count - 1, 0))
            prompt_ids = np.asarray(request["input_ids"]).reshape(-1).astype(np.int32)
            output = np.concatenate([prompt_ids, np.arange(100, 100 + count, dtype=np.int32)])
            responses.append({"output_ids": output, "sequence_length": np.array([len(output)], dtype=np.int32)})
        return responses

    text_inputs = [
        Tensor(name="text_input", dtype=bytes, shape=(1,)),
        Tensor(name="max_tokens", dtype=np.int32, shape=(1,), optional=True),
    ]
    text_outputs = [Tensor(name="text_output", dtype=bytes, shape=(1,))]
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        grpc_address="127.0.0.1",
        grpc_port=args.grpc_port,
        metrics_address="127.0.0.1",
        metrics_port=args.metrics_port,
        allow_sagemaker=False,
        log_verbose=0,
    )
    triton = Triton(
        config=config, workspace=args.workdir, security_config=TritonSecurityConfig(restricted_endpoints=[])
    )
    with triton:
        triton.bind(
            "stream",
            stream,
            [*text_inputs, Tensor(name="fail_after", dtype=np.int32, shape=(1,), optional=True)],
            text_outputs,
            config=ModelConfig(decoupled=True, batching=False),
        )
        triton.bind("text", text, text_inputs, text_outputs, config=ModelConfig(batching=False))
        triton.bind(
            "batched",
            batched,
            [Tensor(name="text_input", dtype=bytes, shape=(1,)), Tensor(name="max_tokens", dtype=np.int32, shape=(1,))],
            text_outputs,
            config=ModelConfig(max_batch_size=8, batcher=DynamicBatcher(max_queue_delay_microseconds=5000)),
        )
        triton.bind(
            "ft",
            ft,
            [
                Tensor(name="input_ids", dtype=np.int32, shape=(-1,)),
                Tensor(name="input_lengths", dtype=np.int32, shape=(1,)),
                Tensor(name="request_output_len", dtype=np.int32, shape=(1,)),
            ],
            [
                Tensor(name="output_ids", dtype=np.int32, shape=(-1,)),
                Tensor(name="sequence_length", dtype=np.int32, shape=(1,)),
            ],
            config=ModelConfig(batching=False),
        )
        triton.run()
        print("loadgen-test-triton: ready", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
