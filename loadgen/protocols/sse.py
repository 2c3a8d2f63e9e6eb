"""Protocols layer: an incremental Server-Sent Events decoder; pure, no I/O.

Bytes may be split anywhere, including mid-line and inside a UTF-8 sequence: lines are cut on
the newline byte (which never occurs inside a UTF-8 sequence) before decoding. Follows the
WHATWG event-stream rules: ``data:`` lines accumulate, a blank line dispatches, ``:`` lines are
comments, ``event:`` names the event.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.errors import ProtocolError


@dataclass(frozen=True, slots=True)
class SseEvent:
    data: str
    event: str = "message"


class SseDecoder:
    def __init__(self, max_line_bytes: int = 64 * 1024 * 1024) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = "message"
        self._max_line_bytes = max_line_bytes
        self.truncated = False

    def decode(self, chunk: bytes) -> list[SseEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        if len(self._buffer) > self._max_line_bytes:
            raise ProtocolError(f"SSE line longer than {self._max_line_bytes} bytes")
        events: list[SseEvent] = []
        for raw_line in lines:
            self._handle_line(raw_line, events)
        return events

    def flush(self) -> list[SseEvent]:
        """End of stream. Complete ``data:`` lines still pending are dispatched (servers often omit
        the last blank line); an unterminated last line is cut-off data and is discarded, with
        ``truncated`` set, as the event-stream rules require."""
        events: list[SseEvent] = []
        self.truncated = bool(self._buffer.strip())
        self._buffer = b""
        self._dispatch(events)
        return events

    def _handle_line(self, raw_line: bytes, events: list[SseEvent]) -> None:
        if raw_line.endswith(b"\r"):
            raw_line = raw_line[:-1]
        if not raw_line:
            self._dispatch(events)
            return
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"SSE stream is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
        if line[0] == ":":
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value

    def _dispatch(self, events: list[SseEvent]) -> None:
        if self._data:
            events.append(SseEvent("\n".join(self._data), self._event))
        self._data = []
        self._event = "message"
