import json

import pytest

from loadgen.config import GenerationConfig
from loadgen.errors import ProtocolError
from loadgen.prompts import Prompt
from loadgen.protocols import get_codec
from loadgen.protocols.base import ContentChunk, Finish, GenerationParams, ServerError, Usage
from loadgen.protocols.openai import OpenAIStreamDecoder
from tests.protocols import streams
from tests.protocols.helpers import feed_all


def chat_events(data: bytes, *cuts: int) -> list:
    return feed_all(get_codec("openai-chat").decoder(stream=True), data, *cuts)


def test_chat_stream_events() -> None:
    events = chat_events(streams.VLLM_CHAT_STREAM)
    assert events == [
        ContentChunk("Hel"),
        ContentChunk("lo, wörld €"),
        ContentChunk(""),
        ContentChunk("!"),
        Finish("length"),
        Usage(12, 4),
    ]


def test_an_empty_delta_mid_stream_is_a_token_the_role_only_one_is_not() -> None:
    # vLLM's stream: role-only first delta, then 4 tokens, one of them ending mid-UTF-8 character
    # (empty text); its usage says 4 completion tokens
    chunks = [e for e in chat_events(streams.VLLM_CHAT_STREAM) if isinstance(e, ContentChunk)]
    assert [c.text for c in chunks] == ["Hel", "lo, wörld €", "", "!"]


@pytest.mark.parametrize(
    ("delta", "finish", "tokens"),
    [('{"role":"assistant","content":""}', "null", 0), ('{"content":""}', "null", 1), ("{}", '"stop"', 0),
     ('{"content":""}', '"length"', 0), ('{"content":"x"}', '"stop"', 1), ("{}", "null", 0)],
)  # fmt: skip
def test_which_chat_deltas_carry_a_token(delta: str, finish: str, tokens: int) -> None:
    frame = (f'data: {{"choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}\n\n').encode()
    decoder = get_codec("openai-chat").decoder(stream=True)
    assert sum(isinstance(e, ContentChunk) for e in decoder.feed(frame)) == tokens


def test_an_empty_completions_text_mid_stream_is_a_token() -> None:
    decoder = get_codec("openai-completions").decoder(stream=True)
    events = decoder.feed(b'data: {"choices":[{"index":0,"text":"","finish_reason":null}]}\n\n'
                          b'data: {"choices":[{"index":0,"text":"","finish_reason":"stop"}]}\n\n')  # fmt: skip
    assert [e for e in events if isinstance(e, ContentChunk)] == [ContentChunk("")]


@pytest.mark.parametrize("stream", [streams.VLLM_CHAT_STREAM, streams.REASONING_STREAM, streams.ERROR_IN_STREAM])
def test_every_split_point_gives_the_same_events(stream: bytes) -> None:
    expected = chat_events(stream)
    for cut in range(len(stream) + 1):
        assert chat_events(stream, cut) == expected


def test_completions_stream() -> None:
    decoder = get_codec("openai-completions").decoder(stream=True)
    assert feed_all(decoder, streams.VLLM_COMPLETIONS_STREAM) == [
        ContentChunk(" one"),
        ContentChunk(" two"),
        Finish("stop"),
        Usage(3, 2),
    ]


def test_reasoning_content_is_generated_output() -> None:
    events = chat_events(streams.REASONING_STREAM)
    assert events[0] == ContentChunk("Let me think.", reasoning=True)
    assert events[1] == ContentChunk("42")


def test_error_object_in_stream() -> None:
    events = chat_events(streams.ERROR_IN_STREAM)
    assert ServerError("CUDA out of memory") in events


def test_stream_without_done_or_finish_is_truncated() -> None:
    truncated = streams.VLLM_CHAT_STREAM[:400]
    with pytest.raises(ProtocolError, match="ended before"):
        chat_events(truncated)


def test_finish_reason_without_done_is_accepted() -> None:
    data = b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}\n\n'
    assert chat_events(data) == [ContentChunk("a"), Finish("stop")]


@pytest.mark.parametrize("bad", [b"data: {not json}\n\n", b"data: [1,2]\n\n", b"data: \xff\n\n"])
def test_malformed_stream_is_a_protocol_error(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        chat_events(bad)


def test_non_streaming_chat_body() -> None:
    body = json.dumps(
        {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }
    ).encode()
    decoder = get_codec("openai-chat").decoder(stream=False)
    assert feed_all(decoder, body, 7) == [ContentChunk("Hi there"), Finish("stop"), Usage(5, 2)]


@pytest.mark.parametrize("body", [b"<html><body>502 Bad Gateway</body></html>", b"{}", b'{"choices": []}'])
def test_malformed_non_streaming_body(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        feed_all(get_codec("openai-chat").decoder(stream=False), body)


def test_error_message_from_html_and_json_bodies() -> None:
    codec = get_codec("openai-chat")
    assert codec.error_message(404, b'{"error":{"message":"The model `x` does not exist."}}') == (
        "The model `x` does not exist."
    )
    assert codec.error_message(502, b"<html><body>Bad Gateway</body></html>").startswith("HTML page:")


def test_chat_request_body() -> None:
    codec = get_codec("openai-chat")
    config = GenerationConfig(max_tokens=64, ignore_eos=True, temperature=0.0, extra_body=(("top_p", 0.9),))
    request = codec.build_request(Prompt("p", text="hello"), GenerationParams("m", config))
    body = json.loads(request.body)
    assert request.path == "/v1/chat/completions"
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 64,
        "ignore_eos": True,
        "min_tokens": 64,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "top_p": 0.9,
    }


def test_prompt_max_tokens_overrides_default_and_messages_pass_through() -> None:
    codec = get_codec("openai-completions")
    prompt = Prompt("p", messages=({"role": "user", "content": "a"}, {"role": "user", "content": "b"}), max_tokens=7)
    body = json.loads(codec.build_request(prompt, GenerationParams(None, GenerationConfig(stream=False))).body)
    assert body == {"prompt": "a\nb", "max_tokens": 7, "stream": False}


def test_usage_says_how_much_of_the_prompt_came_from_the_prefix_cache() -> None:
    decoder = get_codec("openai-chat").decoder(stream=True)
    events = decoder.feed(b'data: {"choices":[],"usage":{"prompt_tokens":150,"completion_tokens":8,'
                          b'"prompt_tokens_details":{"cached_tokens":144}}}\n\n')  # fmt: skip
    assert events == [Usage(150, 8, 144)]
    assert decoder.feed(b'data: {"choices":[],"usage":{"prompt_tokens":150,"completion_tokens":8}}\n\n') == [
        Usage(150, 8, None)
    ]


@pytest.mark.parametrize("usage", ['"completion_tokens":-4048', '"prompt_tokens":-1', '"completion_tokens":8,'
                                   '"prompt_tokens_details":{"cached_tokens":-3}'])  # fmt: skip
def test_a_negative_token_count_is_the_servers_error_not_a_figure(usage: str) -> None:
    decoder = get_codec("openai-chat").decoder(stream=True)
    with pytest.raises(ProtocolError, match="expected a whole number ≥ 0"):
        decoder.feed(b'data: {"choices":[],"usage":{' + usage.encode() + b"}}\n\n")


@pytest.mark.parametrize("generated", ["-5", '"7"', "2.5", "true"])
def test_tgi_generated_tokens_must_be_a_count(generated: str) -> None:
    decoder = get_codec("tgi").decoder(stream=True)
    final = '{"token":{"id":1,"text":"a","special":false},"generated_text":"a","details":{"finish_reason":"length",'
    with pytest.raises(ProtocolError):
        decoder.feed(f'data: {final}"generated_tokens":{generated}}}}}\n\n'.encode())


CHUNK_SHAPES = [  # what servers stream, odd ones included: the typed way and the general way must agree
    {"choices": [{"index": 0, "text": "the", "finish_reason": None, "logprobs": None}]},
    {"choices": [{"index": 0, "text": "", "finish_reason": None}]},
    {"choices": [{"index": 0, "text": "", "finish_reason": "length"}]},
    {"choices": [{"index": 0, "text": 7}]},
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"choices": [{"index": 0, "delta": {"role": None, "content": ""}}]},
    {"choices": [{"index": 0, "delta": {"content": ""}}]},
    {"choices": [{"index": 0, "delta": {"content": "", "tool_calls": [{"id": "t"}]}}]},
    {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]},
    {"choices": [{"index": 0, "delta": {"reasoning_content": "hmm", "content": None}}]},
    {"choices": [{"index": 0, "delta": {"reasoning": "so", "content": "b"}}]},
    {"choices": [{"index": 0, "delta": None}]},
    {"choices": [{"index": 0, "delta": {"content": ["not", "text"]}}]},
    {"choices": [{"index": 0, "finish_reason": 3}]},
    {"choices": None, "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                "prompt_tokens_details": {"cached_tokens": 1}}},
    {"choices": [], "usage": [1, 2]},
    {"choices": [], "timings": {"prompt_ms": 1.5, "predicted_ms": 2.5}},
    {"choices": [], "timings": None},
    {"error": {"message": "overloaded"}},
    {"error": "plain"},
    {"id": "x"},
]  # fmt: skip


@pytest.mark.parametrize("chat", [True, False])
@pytest.mark.parametrize("shape", CHUNK_SHAPES, ids=lambda shape: json.dumps(shape)[:60])
def test_the_typed_and_the_general_way_agree(chat: bool, shape: dict[str, object]) -> None:
    data = json.dumps(shape).encode()
    typed, general = OpenAIStreamDecoder(chat), OpenAIStreamDecoder(chat)
    typed_events: list[object] = []
    general_events: list[object] = []
    typed._handle(data, typed_events)
    general._handle_dict(data, general_events)
    assert typed_events == general_events
    assert (typed._finished, typed._done) == (general._finished, general._done)
