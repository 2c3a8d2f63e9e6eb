"""An encoder of AWS event-stream frames, for test servers (the decoder is botocore's).

Frame: total length (u32), headers length (u32), CRC32 of those 8 bytes, headers, payload, CRC32 of
everything before it. A string header: name length (u8), name, type 7, value length (u16), value.
"""

from __future__ import annotations

import json
import struct
import zlib


def _headers(headers: dict[str, str]) -> bytes:
    encoded = b""
    for name, value in headers.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        encoded += struct.pack("!B", len(name_bytes)) + name_bytes + b"\x07" + struct.pack("!H", len(value_bytes))
        encoded += value_bytes
    return encoded


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    header_bytes = _headers(headers)
    total = 12 + len(header_bytes) + len(payload) + 4
    prelude = struct.pack("!II", total, len(header_bytes))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + header_bytes + payload
    return body + struct.pack("!I", zlib.crc32(body) & 0xFFFFFFFF)


def payload_part(data: bytes) -> bytes:
    return frame({":event-type": "PayloadPart", ":content-type": "application/octet-stream",
                  ":message-type": "event"}, data)  # fmt: skip


def model_stream_error(message: str, code: str = "424") -> bytes:
    headers = {":exception-type": "ModelStreamError", ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, json.dumps({"Message": message, "ErrorCode": code}).encode())
