"""Protocols layer: an incremental Server-Sent Events decoder; pure, no I/O.

Bytes may be split anywhere, including mid-line and inside a UTF-8 sequence: events are cut on
newline bytes (which never occur inside a UTF-8 sequence) before any decoding. Follows the
WHATWG event-stream rules: ``data:`` lines accumulate, a blank line dispatches, ``:`` lines are
comments, ``event:`` names the event.

The hot path (``decode_data``) splits a read into whole events at ``\\n\\n`` and hands a
one-line ``data:`` event's payload on as bytes, without decoding or a per-line step; anything
else (comments, several lines, ``event:``, CR line ends) goes through the line-by-line rules.
Both caps bound memory: a line, and the bytes of one event still waiting for its blank line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadgen.errors import ProtocolError

DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: str
    event: str = "message"


class SseDecoder:
    def __init__(self, max_line_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._buffer = b""  # the bytes after the last whole event (fast path) or the last whole line
        self._data: list[bytes] = []  # data lines of the event being read line by line
        self._data_bytes = 0
        self._event = "message"
        self._max_bytes = max_line_bytes
        self.truncated = False

    def decode_data(self, chunk: bytes) -> list[bytes]:
        """The data of every event this chunk completes, as UTF-8 bytes not yet checked (the
        caller's JSON parser checks them). ``_decode``'s fast path, inlined: it runs per read."""
        out: list[bytes] = []
        buffer = self._buffer + chunk if self._buffer else chunk
        if self._data or self._event != "message" or b"\r" in buffer:
            self._buffer = b""
            self._decode(buffer, out, named=False)
            return out
        events = buffer.split(b"\n\n")
        self._buffer = tail = events.pop()
        if len(tail) > self._max_bytes:
            self._check_size(len(tail))
        for event in events:
            if event[:5] == b"data:" and b"\n" not in event:
                out.append(event[6:] if event[5:6] == b" " else event[5:])
            elif event:
                self._lines([*event.split(b"\n"), b""], out, False)
        return out

    def single_data(self, chunk: bytes) -> bytes | None:
        """The payload when ``chunk`` is exactly one whole one-line ``data:`` event and nothing is
        pending (what a streaming server writes per token); else None, and nothing is consumed:
        the caller goes on with ``decode_data``."""
        if (
            chunk.count(b"\n") == 2
            and chunk.endswith(b"\n\n")
            and chunk.startswith(b"data:")
            and chunk.find(b"\r") < 0
            and not self._buffer
            and not self._data
            and self._event == "message"
        ):
            return chunk[6:-2] if chunk[5:6] == b" " else chunk[5:-2]
        return None

    def decode(self, chunk: bytes) -> list[SseEvent]:
        """Like ``decode_data``, with event names and the data decoded."""
        out: list[SseEvent] = []
        self._decode(chunk, out, named=True)
        return out

    def flush_data(self) -> list[bytes]:
        out: list[bytes] = []
        self._flush(out, named=False)
        return out

    def flush(self) -> list[SseEvent]:
        """End of stream. Complete ``data:`` lines still pending are dispatched (servers often omit
        the last blank line); an unterminated last line is cut-off data and is discarded, with
        ``truncated`` set, as the event-stream rules require."""
        out: list[SseEvent] = []
        self._flush(out, named=True)
        return out

    def _decode(self, chunk: bytes, out: list[Any], named: bool) -> None:
        buffer = self._buffer + chunk if self._buffer else chunk
        if self._data or self._event != "message" or b"\r" in buffer:
            lines = buffer.split(b"\n")
            self._buffer = lines.pop()
            self._check_size(len(self._buffer))
            self._lines(lines, out, named)
            return
        events = buffer.split(b"\n\n")
        self._buffer = events.pop()
        self._check_size(len(self._buffer))
        for event in events:
            if event[:5] == b"data:" and b"\n" not in event:
                payload = event[6:] if event[5:6] == b" " else event[5:]
                out.append(SseEvent(_text(payload)) if named else payload)
            elif event:
                self._lines([*event.split(b"\n"), b""], out, named)

    def _flush(self, out: list[Any], named: bool) -> None:
        lines = self._buffer.split(b"\n")
        self._buffer = b""
        last = lines.pop()
        self._lines(lines, out, named)
        self.truncated = bool(last.strip())
        self._dispatch(out, named)

    def _lines(self, lines: list[bytes], out: list[Any], named: bool) -> None:
        for raw_line in lines:
            line = raw_line[:-1] if raw_line[-1:] == b"\r" else raw_line
            if not line:
                self._dispatch(out, named)
                continue
            if line[:1] == b":":
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data.append(value)
                self._data_bytes += len(value)
                self._check_size(self._data_bytes)
            elif name == b"event":
                self._event = _text(value)

    def _dispatch(self, out: list[Any], named: bool) -> None:
        if self._data:
            payload = b"\n".join(self._data)
            out.append(SseEvent(_text(payload), self._event) if named else payload)
        self._data = []
        self._data_bytes = 0
        self._event = "message"

    def _check_size(self, size: int) -> None:
        if size > self._max_bytes:
            raise ProtocolError(f"SSE line or event longer than {self._max_bytes} bytes")


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"SSE stream is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
