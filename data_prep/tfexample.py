"""Decode serialized ``tf.train.Example`` protocol buffers without TensorFlow.

Only the wire format is needed: Example{1: Features{1: map<string, Feature>}} and
Feature{1: BytesList{1: repeated bytes}, 2: FloatList{1: repeated float}, 3: Int64List{1: repeated int64}}.
Writing the ~60 lines of varint parsing here avoids a TensorFlow dependency and any generated code.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .errors import DataError


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise DataError("truncated varint in a tf.train.Example")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """Yield (field number, wire type, value) for each field of a message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
            yield field, wire, val
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise DataError("truncated length-delimited field in a tf.train.Example")
            yield field, wire, buf[pos : pos + n]
            pos += n
        elif wire == 1:
            yield field, wire, buf[pos : pos + 8]
            pos += 8
        elif wire == 5:
            yield field, wire, buf[pos : pos + 4]
            pos += 4
        else:
            raise DataError(f"unsupported protobuf wire type {wire} in a tf.train.Example")


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _decode_feature(buf: bytes) -> list[bytes] | list[float] | list[int]:
    for field, _, kind_buf in _fields(buf):
        values: list = []
        for f2, wire, v in _fields(kind_buf):  # type: ignore[arg-type]
            if f2 != 1:
                continue
            if field == 1:
                values.append(bytes(v))  # type: ignore[arg-type]
            elif field == 2:
                # Packed (wire 2) or a single fixed32 (wire 5): both are little-endian float32 bytes.
                values.extend(struct.unpack(f"<{len(v) // 4}f", v))  # type: ignore[arg-type]
            elif field == 3:
                if wire == 0:
                    values.append(_signed64(v))  # type: ignore[arg-type]
                else:
                    p = 0
                    while p < len(v):  # type: ignore[arg-type]
                        x, p = _varint(v, p)  # type: ignore[arg-type]
                        values.append(_signed64(x))
        return values
    return []


def parse_example(buf: bytes) -> dict[str, list]:
    """Parse a serialized ``tf.train.Example`` into ``{feature name: list of values}``.

    Bytes features give ``list[bytes]``, float features ``list[float]``, int64 features ``list[int]``.
    """
    out: dict[str, list] = {}
    for field, _, features in _fields(buf):
        if field != 1:
            continue
        for f2, _, entry in _fields(features):  # type: ignore[arg-type]
            if f2 != 1:
                continue
            key, value = "", b""
            for f3, _, v in _fields(entry):  # type: ignore[arg-type]
                if f3 == 1:
                    key = bytes(v).decode("utf-8")  # type: ignore[arg-type]
                elif f3 == 2:
                    value = v  # type: ignore[assignment]
            out[key] = _decode_feature(value)  # type: ignore[arg-type]
    return out
