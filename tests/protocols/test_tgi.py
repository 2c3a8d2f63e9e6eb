import json
from collections.abc import Callable

import pytest

from loadgen.config import GenerationConfig
from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.protocols import get_codec
from loadgen.protocols.base import ContentChunk, Finish, GenerationParams, ServerError, StreamEvent, Usage, decode_json
from loadgen.protocols.tgi import TgiStreamDecoder
from loadgen.protocols.token_stream import token_message, token_message_events
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


MESSAGE_SHAPES = [  # what TGI (and servers like it) stream, odd ones included: the typed and general ways agree
    {"index": 1, "token": {"id": 5, "text": " tok", "logprob": -0.5, "special": False}, "generated_text": None,
     "details": None},
    {"token": {"id": 2, "text": "</s>", "logprob": -0.1, "special": True}, "generated_text": "a",
     "details": {"finish_reason": "eos_token", "generated_tokens": 3, "seed": None}},
    {"token": {"id": 5, "text": "", "logprob": -0.5, "special": False}},
    {"token": {"id": 5, "text": None}},
    {"token": {"id": 5, "text": "x", "logprob": 0}},
    {"token": {"id": 5, "text": "x", "logprob": "-0.25"}},
    {"token": {"id": 5, "text": "x", "log_prob": -0.75, "logprob": -0.5}},
    {"token": {"id": 5, "text": "x", "log_prob": None, "logprob": -0.5}},
    {"token": {"id": 5, "text": "x", "special": 0}},
    {"token": {"id": 5, "text": "x", "special": 1}},
    {"token": {"id": 5, "text": 7}},
    {"token": None, "generated_text": "all", "details": None},
    {"token": {"text": "y"}, "generated_text": None, "details": "odd"},
    {"token": {"text": "y"}, "details": {"finish_reason": "length", "generated_tokens": 1}},
    {"error": "out of memory", "error_type": "generation"},
    {"error": None},
    {"token": [1, 2]},
    {"token": "text"},
    [1, 2],
    "plain",
]  # fmt: skip


def _outcome(handle: Callable[[bytes, list[StreamEvent]], bool], data: bytes) -> tuple[list[StreamEvent], object]:
    events: list[StreamEvent] = []
    try:
        ended = handle(data, events)
    except ProtocolError as exc:
        return events, str(exc)
    return events, ended


@pytest.mark.parametrize("what", ["SSE data", "JSON line"])  # TGI's events, LMI's lines
@pytest.mark.parametrize("shape", MESSAGE_SHAPES, ids=lambda shape: json.dumps(shape)[:60])
def test_the_typed_and_the_general_way_agree(shape: object, what: str) -> None:
    data = json.dumps(shape).encode()

    def general(data: bytes, events: list[StreamEvent]) -> bool:
        return token_message_events(decode_json(data, what), data, what, events)

    assert _outcome(lambda data, events: token_message(data, what, events), data) == _outcome(general, data)


def test_not_json_is_said_the_general_way() -> None:
    with pytest.raises(ProtocolError, match="SSE data is not valid JSON"):
        TgiStreamDecoder().feed(b"data: {not json\n\n")
