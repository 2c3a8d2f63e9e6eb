"""Protocols layer: the token-per-message responses that TGI and LMI share (pure).

A message is ``{"token": {"id", "text", "log_prob" | "logprob", "special"}, "generated_text",
"details"}``; the last one carries ``generated_text`` and ``details`` (``finish_reason``,
``generated_tokens``); ``{"error": …}`` reports a failure. TGI sends them as SSE events, LMI as
JSON lines. Special tokens (EOS) are tokens but not content.
"""

from __future__ import annotations

from typing import Any

import msgspec

from loadgen.errors import ProtocolError
from loadgen.protocols.base import (
    TYPED_MISFITS,
    ContentChunk,
    Finish,
    ServerError,
    StreamEvent,
    Usage,
    decode_json,
    merge_batch_events,
    preview,
)


def details_events(details: object) -> list[StreamEvent]:
    if not isinstance(details, dict):
        return []
    return [Usage(None, details.get("generated_tokens")), Finish(details.get("finish_reason"))]


class _Token(msgspec.Struct):
    text: str | None = None
    special: bool | None = None
    logprob: float | None = None
    log_prob: float | msgspec.UnsetType | None = msgspec.UNSET  # LMI's name; a null one hides ``logprob``


class _TokenMessage(msgspec.Struct):
    """The fields of a stream message the decoder reads: one that does not fit these types goes
    the general way (``token_message_events``), which says what is wrong."""

    token: _Token | None = None
    generated_text: Any = None
    details: dict[str, Any] | None = None
    error: Any = msgspec.UNSET


_decode_message = msgspec.json.Decoder(_TokenMessage).decode


def token_message(data: bytes, what: str, events: list[StreamEvent]) -> bool:
    """Appends one message's events; returns True when it ends the response. Decoded straight into
    the fields read (``_TokenMessage``); any other shape, or not JSON, goes the general way
    (``token_message_events``), which says what is wrong."""
    try:
        message = _decode_message(data)
    except TYPED_MISFITS:
        return token_message_events(decode_json(data, what), data, what, events)
    if message.error is not msgspec.UNSET:
        events.append(ServerError(str(message.error)))
        return True
    token = message.token
    if token is not None:
        text = token.text
        if text and not token.special:
            log_prob = token.log_prob
            logprob = token.logprob if isinstance(log_prob, msgspec.UnsetType) else log_prob
            events.append(ContentChunk(text, 1, False, logprob))
    if message.generated_text is not None or message.details is not None:
        events.extend(details_events(message.details))
        return True
    return False


def token_message_events(message: object, raw: str | bytes, what: str, events: list[StreamEvent]) -> bool:
    """Appends the message's events; returns True when it ends the response."""
    if not isinstance(message, dict):
        raise ProtocolError(f"{what} is not a JSON object: {preview(raw)!r}")
    if "error" in message:
        events.append(ServerError(str(message["error"])))
        return True
    token = message.get("token")
    if isinstance(token, dict):
        text = token.get("text") or ""
        if text and not token.get("special"):
            logprob = token.get("log_prob", token.get("logprob"))
            events.append(ContentChunk(text, tokens=1, logprob=float(logprob) if logprob is not None else None))
    elif token is not None:
        raise ProtocolError(f"'token' is not an object: {preview(raw)!r}")
    if message.get("generated_text") is not None or message.get("details") is not None:
        events.extend(details_events(message.get("details")))
        return True
    return False


def generated_body_events(body: bytes, *, outputs_form: bool = False) -> list[StreamEvent]:
    """A whole response: ``{"generated_text", "details"}`` (or a list of one); with
    ``outputs_form`` also LMI's older ``{"outputs": [text]}``."""
    data = decode_json(body, "response body")
    if isinstance(data, list) and len(data) > 1:  # the answers to a list of inputs (--batch-size)
        events: list[StreamEvent] = []
        for item in data:
            events += _generated_events(item, outputs_form)
        return merge_batch_events(events)
    if isinstance(data, list) and data:
        data = data[0]
    return _generated_events(data, outputs_form)


def _generated_events(data: object, outputs_form: bool) -> list[StreamEvent]:
    if not isinstance(data, dict):
        raise ProtocolError("response body is not a JSON object")
    if "error" in data:
        return [ServerError(str(data["error"]))]
    text = data.get("generated_text")
    if text is None and outputs_form and isinstance(data.get("outputs"), list) and data["outputs"]:
        text = data["outputs"][0]
    if not isinstance(text, str):
        raise ProtocolError("response has no 'generated_text'" + (" (or 'outputs')" if outputs_form else ""))
    events: list[StreamEvent] = [ContentChunk(text)] if text else []
    return events + details_events(data.get("details"))
