from typing import Any

import pytest

from loadgen.errors import ProtocolError
from loadgen.protocols.sse import SseDecoder, SseEvent


def fed_in_pieces(data: bytes, cuts: tuple[int, ...], feed: str, flush: str) -> list[Any]:
    """``decoder.<feed>`` on the pieces of ``data`` cut at ``cuts``, then ``decoder.<flush>``."""
    decoder = SseDecoder()
    out: list[Any] = []
    previous = 0
    for cut in (*cuts, len(data)):
        out += getattr(decoder, feed)(data[previous:cut])
        previous = cut
    return out + getattr(decoder, flush)()


def decode_split(data: bytes, *cuts: int) -> list[SseEvent]:
    return fed_in_pieces(data, cuts, "decode", "flush")


def test_data_lines_dispatch_on_blank_line() -> None:
    assert decode_split(b"data: a\n\ndata: b\n\n") == [SseEvent("a"), SseEvent("b")]


def test_multiline_data_event_names_and_comments() -> None:
    stream = b": comment\nevent: update\ndata: line1\ndata:line2\n\ndata: x\n\n"
    assert decode_split(stream) == [SseEvent("line1\nline2", "update"), SseEvent("x")]


def test_crlf_line_endings() -> None:
    assert decode_split(b"data: a\r\n\r\ndata: b\r\n\r\n") == [SseEvent("a"), SseEvent("b")]


def test_every_split_point_gives_the_same_events() -> None:
    stream = "data: héllo €\n\n: c\ndata: 二\n\n".encode()
    expected = decode_split(stream)
    assert expected == [SseEvent("héllo €"), SseEvent("二")]
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1, 3):
            assert decode_split(stream, first, second) == expected


def test_flush_dispatches_complete_lines_without_trailing_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.decode(b"data: last\n") == []
    assert decoder.flush() == [SseEvent("last")]
    assert not decoder.truncated


def test_flush_discards_an_unterminated_line() -> None:
    decoder = SseDecoder()
    assert decoder.decode(b'data: {"partial') == []
    assert decoder.flush() == []
    assert decoder.truncated


def test_invalid_utf8_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="UTF-8"):
        SseDecoder().decode(b"data: \xff\xfe\n\n")


def test_overlong_line_is_a_protocol_error() -> None:
    decoder = SseDecoder(max_line_bytes=16)
    with pytest.raises(ProtocolError, match="longer than"):
        decoder.decode(b"data: " + b"x" * 64)


def payloads_split(data: bytes, *cuts: int) -> list[bytes]:
    return fed_in_pieces(data, cuts, "decode_data", "flush_data")


def test_decode_data_gives_the_payloads_of_decode_at_every_split() -> None:
    stream = (
        "data: héllo €\n\n: comment\ndata: 二\n\ndata:no-space\n\nevent: named\ndata: one\ndata: two\n\n"
        'data: a\r\n\r\n\n\ndata: {"k": 1}\n\ndata\n\ndata: last\n'
    ).encode()
    expected = [event.data.encode() for event in decode_split(stream)]
    assert expected == [
        "héllo €".encode(), "二".encode(), b"no-space", b"one\ntwo", b"a", b'{"k": 1}', b"", b"last",
    ]  # fmt: skip
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1, 5):
            assert payloads_split(stream, first, second) == expected
            assert decode_split(stream, first, second) == decode_split(stream)


def test_event_names_survive_a_split_after_the_event_line() -> None:
    assert decode_split(b"event: update\ndata: x\n\ndata: y\n\n", 14) == [SseEvent("x", "update"), SseEvent("y")]


def test_an_event_without_its_blank_line_is_capped() -> None:
    decoder = SseDecoder(max_line_bytes=64)
    with pytest.raises(ProtocolError, match="longer than 64 bytes"):
        for _ in range(20):
            decoder.decode_data(b"data: xxxxxxxx\n")


def test_single_data_takes_only_a_whole_one_line_event_with_nothing_pending() -> None:
    decoder = SseDecoder()
    assert decoder.single_data(b'data: {"k": 1}\n\n') == b'{"k": 1}'
    assert decoder.single_data(b"data:x\n\n") == b"x"
    for not_single in (b"data: a\n\ndata: b\n\n", b"data: a\ndata: b\n\n", b"data: a\r\n\r\n", b"data: a\rb\n\n",
                       b"event: e\ndata: a\n\n", b": hi\n\n", b"data: a\n", b"data: a"):  # fmt: skip
        assert decoder.single_data(not_single) is None, not_single
    assert decoder.decode_data(b"data: par") == []
    assert decoder.single_data(b"data: b\n\n") is None  # a partial event is pending
    assert decoder.decode_data(b"tial\n\n") == [b"partial"]
    assert decoder.decode_data(b"event: named\n") == []
    assert decoder.single_data(b"data: b\n\n") is None  # an event name is pending


def test_single_data_with_its_fallback_gives_the_payloads_of_decode_at_every_split() -> None:
    stream = b'data: one\n\nevent: e\ndata: two\n\ndata: {"k": 1}\n\ndata: a\rdata: b\n\ndata: last\n\n'
    expected = [event.data.encode() for event in decode_split(stream)]
    for cut in range(len(stream) + 1):
        decoder = SseDecoder()
        out: list[bytes] = []
        for piece in (stream[:cut], stream[cut:]):
            single = decoder.single_data(piece)
            out += [single] if single is not None else decoder.decode_data(piece)
        assert out + decoder.flush_data() == expected, cut
