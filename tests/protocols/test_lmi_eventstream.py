import json

import pytest
from botocore.eventstream import EventStreamBuffer

from loadgen.config import GenerationConfig
from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.protocols import build_codec
from loadgen.protocols.base import ContentChunk, Finish, GenerationParams, ServerError, Usage
from loadgen.protocols.lmi import LmiCodec
from loadgen.protocols.sagemaker import SageMakerTarget
from tests.aws_eventstream import model_stream_error, payload_part
from tests.protocols.helpers import feed_all

LMI_STREAM = (
    b'{"token": {"id": 13, "text": " Hello", "log_prob": -0.25}, "generated_text": null, "details": null}\n'
    b'{"token": {"id": 14, "text": " w\xc3\xb6rld", "log_prob": -1.5}, "generated_text": null, "details": null}\n'
    b'{"token": {"id": 2, "text": "</s>", "log_prob": -0.1, "special": true}, "generated_text": " Hello w\xc3\xb6rld",'
    b' "details": {"finish_reason": "eos_token", "generated_tokens": 3, "inputs": "hi"}}\n'
)
EXPECTED = [ContentChunk(" Hello", 1, logprob=-0.25), ContentChunk(" wörld", 1, logprob=-1.5), Usage(None, 3),
            Finish("eos_token")]  # fmt: skip


def test_lmi_json_lines_at_every_split_point() -> None:
    for cut in range(len(LMI_STREAM) + 1):
        assert feed_all(LmiCodec().decoder(stream=True), LMI_STREAM, cut) == EXPECTED


def test_lmi_last_line_without_newline_and_truncation() -> None:
    assert feed_all(LmiCodec().decoder(stream=True), LMI_STREAM.rstrip(b"\n")) == EXPECTED
    with pytest.raises(ProtocolError, match="final line"):
        feed_all(LmiCodec().decoder(stream=True), LMI_STREAM.split(b"\n")[0] + b"\n")
    with pytest.raises(ProtocolError):
        feed_all(LmiCodec().decoder(stream=True), b'{"token": 5}\n')


@pytest.mark.parametrize(
    "body, events",
    [
        (
            b'{"generated_text": "Hi", "details": {"finish_reason": "length", "generated_tokens": 2}}',
            [ContentChunk("Hi"), Usage(None, 2), Finish("length")],
        ),
        (b'[{"generated_text": "Hi"}]', [ContentChunk("Hi")]),
        (b'{"outputs": ["Hi"]}', [ContentChunk("Hi")]),
        (b'{"error": "model not ready", "code": 424}', [ServerError("model not ready")]),
    ],
)
def test_lmi_whole_bodies(body: bytes, events: list) -> None:  # type: ignore[type-arg]
    assert feed_all(LmiCodec().decoder(stream=False), body) == events


def test_lmi_request_body() -> None:
    config = GenerationConfig(max_tokens=50, ignore_eos=True, temperature=0.0)
    request = LmiCodec().build_request(Prompt("p", text="hi"), GenerationParams(None, config))
    assert request.path == "/invocations"
    assert json.loads(request.body) == {"inputs": "hi", "stream": True, "parameters": {
        "details": True, "max_new_tokens": 50, "ignore_eos": True, "min_new_tokens": 50, "temperature": 0.0,
        "do_sample": False}}  # fmt: skip


def test_our_frames_decode_with_botocore() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(payload_part(b"abc") + model_stream_error("boom"))
    messages = list(buffer)
    assert messages[0].headers[":event-type"] == "PayloadPart" and messages[0].payload == b"abc"
    assert messages[1].headers[":exception-type"] == "ModelStreamError"


def sagemaker_stream(pieces: list[bytes]) -> bytes:
    return b"".join(payload_part(piece) for piece in pieces)


def test_sagemaker_stream_with_payload_parts_split_mid_line() -> None:
    codec = build_codec("sagemaker", "lmi", SageMakerTarget("my-endpoint"))
    pieces = [LMI_STREAM[:7], LMI_STREAM[7:60], LMI_STREAM[60:61], LMI_STREAM[61:]]
    data = sagemaker_stream(pieces)
    for cut in range(0, len(data) + 1, 7):
        assert feed_all(codec.decoder(stream=True), data, cut) == EXPECTED


def test_sagemaker_openai_schema_in_payload_parts() -> None:
    from tests.protocols.streams import VLLM_CHAT_STREAM

    codec = build_codec("sagemaker", "openai-chat", SageMakerTarget("e"))
    data = sagemaker_stream([VLLM_CHAT_STREAM[:100], VLLM_CHAT_STREAM[100:]])
    events = feed_all(codec.decoder(stream=True), data)
    assert Usage(12, 4) in events


def test_model_stream_error_and_bad_frames() -> None:
    codec = build_codec("sagemaker", "lmi", SageMakerTarget("e"))
    events = feed_all(codec.decoder(stream=True), payload_part(LMI_STREAM[:50]) + model_stream_error("CUDA OOM"))
    assert events[-1] == ServerError("ModelStreamError: CUDA OOM")
    corrupted = bytearray(payload_part(b"x" * 10))
    corrupted[-1] ^= 0xFF
    with pytest.raises(ProtocolError, match="bad event-stream frame"):
        codec.decoder(stream=True).feed(bytes(corrupted))


def test_sagemaker_request_path_and_headers() -> None:
    target = SageMakerTarget("my endpoint", inference_component="ic-1", custom_attributes="a=b", target_variant="v2")
    codec = build_codec("sagemaker", "lmi", target)
    request = codec.build_request(Prompt("p", text="hi"), GenerationParams(None, GenerationConfig()))
    assert request.path == "/endpoints/my%20endpoint/invocations-response-stream"
    headers = dict(request.headers)
    assert headers["X-Amzn-SageMaker-Accept"] == "application/jsonlines"
    assert headers["X-Amzn-SageMaker-Inference-Component"] == "ic-1"
    assert headers["X-Amzn-SageMaker-Custom-Attributes"] == "a=b"
    assert headers["X-Amzn-SageMaker-Target-Variant"] == "v2"
    plain = codec.build_request(Prompt("p", text="hi"), GenerationParams(None, GenerationConfig(stream=False)))
    assert plain.path == "/endpoints/my%20endpoint/invocations"
