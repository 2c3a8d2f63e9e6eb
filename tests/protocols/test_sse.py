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
