"""Protocols layer: AWS event streams (``application/vnd.amazon.eventstream``), as SageMaker's
``InvokeEndpointWithResponseStream`` returns them, decoded with botocore's own parser.

Each ``PayloadPart`` event carries raw bytes of the model's response (which may split lines
anywhere); they are fed to the inner decoder of the schema (LMI JSON lines, TGI or OpenAI SSE).
``ModelStreamError`` and ``InternalStreamFailure`` are exceptions in the stream: server errors.
"""

from __future__ import annotations

import json

from loadgen.errors import ProtocolError
from loadgen.protocols.base import Decoder, ServerError, StreamEvent


class EventStreamDecoder:
    def __init__(self, inner: Decoder) -> None:
        from botocore.eventstream import EventStreamBuffer, ParserError  # the 'sagemaker' extra

        self._parser_error = ParserError
        self._inner = inner
        self._frames = EventStreamBuffer()
        self._failed = False

    def feed(self, data: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        self._frames.add_data(data)
        try:
            for message in self._frames:
                headers = message.headers
                message_type = headers.get(":message-type")
                if message_type == "event" and headers.get(":event-type") == "PayloadPart":
                    events += self._inner.feed(message.payload)
                elif message_type in ("exception", "error"):
                    self._failed = True
                    events.append(ServerError(_describe(headers, message.payload)))
        except self._parser_error as exc:
            raise ProtocolError(f"bad event-stream frame: {exc}") from None
        return events

    def close(self) -> list[StreamEvent]:
        if self._failed:
            return []
        return self._inner.close()


def _describe(headers: dict[str, object], payload: bytes) -> str:
    kind = headers.get(":exception-type") or headers.get(":error-code") or "error"
    try:
        detail = json.loads(payload)
        message = detail.get("Message") or detail.get("message") or payload.decode("utf-8", "replace")
    except (ValueError, AttributeError):
        message = payload.decode("utf-8", "replace")
    return f"{kind}: {message}"  # shortened after redaction, by the engine
