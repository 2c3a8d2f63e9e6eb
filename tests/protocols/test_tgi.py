import json

import pytest

from loadgen.config import GenerationConfig
from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.protocols import get_codec
from loadgen.protocols.base import ContentChunk, Finish, GenerationParams, ServerError, Usage
from tests.protocols import streams
from tests.protocols.helpers import feed_all


def tgi_events(data: bytes, *cuts: int) -> list:
    return feed_all(get_codec("tgi").decoder(stream=True), data, *cuts)


def test_tgi_stream_tokens_and_details() -> None:
    assert tgi_events(streams.TGI_STREAM) == [
        ContentChunk("Hello", tokens=1, logprob=-0.1),
        ContentChunk(" 世界", tokens=1, logprob=-0.2),
        Usage(None, 3),
        Finish("eos_token"),
    ]


def test_every_split_point() -> None:
    expected = tgi_events(streams.TGI_STREAM)
    for cut in range(len(streams.TGI_STREAM) + 1):
        assert tgi_events(streams.TGI_STREAM, cut) == expected


def test_error_event() -> None:
    events = tgi_events(streams.TGI_ERROR_STREAM)
    assert events[0] == ContentChunk("a", tokens=1, logprob=-0.1)
    assert isinstance(events[1], ServerError) and "out of memory" in events[1].message


def test_truncated_stream() -> None:
    with pytest.raises(ProtocolError, match="final event"):
        tgi_events(streams.TGI_STREAM[:150])


def test_token_not_an_object() -> None:
    with pytest.raises(ProtocolError):
        tgi_events(b'data:{"token": 5}\n\n')


def test_generate_body() -> None:
    body = json.dumps({"generated_text": "Hi", "details": {"finish_reason": "length", "generated_tokens": 2}}).encode()
    assert feed_all(get_codec("tgi").decoder(stream=False), body) == [
        ContentChunk("Hi"),
        Usage(None, 2),
        Finish("length"),
    ]
    with pytest.raises(ProtocolError):
        feed_all(get_codec("tgi").decoder(stream=False), b'{"text": "x"}')


def test_request_body() -> None:
    config = GenerationConfig(
        max_tokens=20, ignore_eos=True, temperature=0.7, extra_body=(("parameters", {"top_k": 5}),)
    )
    request = get_codec("tgi").build_request(Prompt("p", text="hi"), GenerationParams("m", config))
    assert request.path == "/generate_stream"
    assert json.loads(request.body) == {
        "inputs": "hi",
        "parameters": {
            "details": True,
            "max_new_tokens": 20,
            "ignore_eos": True,
            "temperature": 0.7,
            "do_sample": True,
            "top_k": 5,
        },
    }
