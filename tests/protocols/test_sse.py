import pytest

from loadgen.errors import ProtocolError
from loadgen.protocols.sse import SseDecoder, SseEvent


def decode_split(data: bytes, *cuts: int) -> list[SseEvent]:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    previous = 0
    for cut in (*cuts, len(data)):
        events += decoder.decode(data[previous:cut])
        previous = cut
    return events + decoder.flush()


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
