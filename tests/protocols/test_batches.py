"""Several prompts in one request (--batch-size): request bodies and merged whole responses."""

from __future__ import annotations

import json

import pytest

from loadgen.config import GenerationConfig
from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt, PromptPicker
from loadgen.protocols import get_codec
from loadgen.protocols.base import ContentChunk, Finish, GenerationParams, Usage
from loadgen.protocols.lmi import LmiCodec
from loadgen.protocols.triton import ModelSignature, TensorInfo, TritonInferCodec, parse_triton_options
from tests.protocols.helpers import feed_all

PROMPTS = [Prompt(id=f"p{i}", text=f"prompt number {i}", max_tokens=8 + i) for i in range(3)]
BATCH = Prompt.batch_of(PROMPTS)
PARAMS = GenerationParams("m", GenerationConfig(max_tokens=None, stream=False))


def test_picker_hands_out_consecutive_prompts_per_request() -> None:
    picker = PromptPicker(PROMPTS * 4, seed=1)
    batch = picker.pick_batch(2, 3)
    assert [p.id for p in batch.batch] == [picker.pick(i).id for i in (6, 7, 8)]
    assert picker.pick_batch(5, 1) == picker.pick(5)
    assert BATCH.max_tokens == 10 and BATCH.texts == ["prompt number 0", "prompt number 1", "prompt number 2"]


def test_openai_completions_sends_a_prompt_list_and_merges_the_choices() -> None:
    codec = get_codec("openai-completions")
    body = json.loads(codec.build_request(BATCH, PARAMS).body)
    assert body["prompt"] == BATCH.texts and body["max_tokens"] == 10
    response = {"choices": [{"index": i, "text": f"answer {i}", "finish_reason": "length"} for i in range(3)],
                "usage": {"prompt_tokens": 9, "completion_tokens": 30}}  # fmt: skip
    events = feed_all(codec.decoder(stream=False), json.dumps(response).encode())
    assert events == [ContentChunk("answer 0\nanswer 1\nanswer 2"), Usage(9, 30), Finish("length")]


def test_lmi_sends_an_inputs_list_and_sums_the_details() -> None:
    codec = LmiCodec()
    assert json.loads(codec.build_request(BATCH, PARAMS).body)["inputs"] == BATCH.texts
    answers = [{"generated_text": f"a{i}", "details": {"generated_tokens": 5 + i, "finish_reason": "length"}}
               for i in range(3)]  # fmt: skip
    events = feed_all(codec.decoder(stream=False), json.dumps(answers).encode())
    assert events == [ContentChunk("a0\na1\na2"), Usage(None, 18), Finish("length")]


def test_lmi_batch_with_a_malformed_item() -> None:
    with pytest.raises(ProtocolError):
        feed_all(LmiCodec().decoder(stream=False), b'[{"generated_text": "a"}, 5]')


INPUTS = {"text_input": TensorInfo("BYTES", (-1, 1)), "max_tokens": TensorInfo("INT32", (-1, 1))}
BATCHED = ModelSignature("llm", INPUTS, {"text_output": TensorInfo("BYTES", (-1, 1))}, max_batch_size=8)


def test_triton_batch_fills_the_batch_dimension() -> None:
    codec = TritonInferCodec(parse_triton_options({}), BATCHED)
    inputs = json.loads(codec.build_request(BATCH, PARAMS).body)["inputs"]
    assert inputs[0] == {"name": "text_input", "datatype": "BYTES", "shape": [3, 1], "data": BATCH.texts}
    assert inputs[1] == {"name": "max_tokens", "datatype": "INT32", "shape": [3, 1], "data": [10, 10, 10]}


def test_triton_model_without_batching_refuses_a_batch() -> None:
    signature = ModelSignature("one", {"text_input": TensorInfo("BYTES", (1,))}, {})
    with pytest.raises(ProtocolError, match="max_batch_size 0"):
        TritonInferCodec(parse_triton_options({}), signature).build_request(BATCH, PARAMS)
