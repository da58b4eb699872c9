"""JSON and text values -> protobuf field values, strictly. Pure.

Every failure is a GatewayError(400) naming the field by its dotted label
(e.g. `disk[0].bus`).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson
from google.protobuf.descriptor import FieldDescriptor as FD
from google.protobuf.message import Message

from services.api_gateway import options
from services.api_gateway.errors import GatewayError
from services.api_gateway.marshal import WRAPPERS
from services.api_gateway.types import EnumDescriptor, FieldDescriptor

_T = FD
_INT_RANGES: dict[int, tuple[int, int]] = {
    **dict.fromkeys((_T.TYPE_INT32, _T.TYPE_SINT32, _T.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((_T.TYPE_UINT32, _T.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((_T.TYPE_UINT64, _T.TYPE_FIXED64), (0, 2**64 - 1)),
}
_TRUE = frozenset({"true", "True", "TRUE", "t", "T", "1"})
_FALSE = frozenset({"false", "False", "FALSE", "f", "F", "0"})

_enum_cache: dict[EnumDescriptor, dict[str, int]] = {}
_DECIMAL = re.compile(r"\s*[+-]?[0-9]{1,20}\s*")
"""A decimal integer in ASCII digits: `str.isdigit()` and `int()` also take
other Unicode digits, and disagree on some (`"³"`). At most 20 digits, the
most a 64-bit field holds: `int()` refuses strings past 4,300 digits."""


def parse_decimal(text: str) -> int | None:
    """`text` as a decimal integer in ASCII digits, or None. Pure."""
    return int(text) if _DECIMAL.fullmatch(text) else None


def _bad(label: str, problem: str) -> GatewayError:
    return GatewayError(400, f'field "{label}": {problem}')


def from_json(fd: FieldDescriptor, value: Any, label: str) -> Any:
    """Convert one JSON value (or query/path text) for a non-message field."""
    kind = fd.type
    if kind in _INT_RANGES:
        return _integer(value, label, _INT_RANGES[kind])
    if kind in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return _float(value, label)
    if kind == _T.TYPE_BOOL:
        return _bool(value, label)
    if kind == _T.TYPE_STRING:
        if not isinstance(value, str):
            raise _bad(label, "expected a string")
        return value
    if kind == _T.TYPE_BYTES:
        return _bytes(value, label)
    if kind == _T.TYPE_ENUM:
        return _enum(fd.enum_type, value, label)
    raise _bad(label, "cannot be set from JSON")


def _integer(value: Any, label: str, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool):
        raise _bad(label, "expected an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise _bad(label, f"expected an integer, got {value!r}")
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        parsed = parse_decimal(value)
        if parsed is None:
            raise _bad(label, f"expected an integer, got {value!r}")
        number = parsed
    else:
        raise _bad(label, "expected an integer")
    low, high = bounds
    if not low <= number <= high:
        raise _bad(label, f"{number} is out of range [{low}, {high}]")
    return number


def _float(value: Any, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(label, "expected a number")
    try:
        return float(value)
    except ValueError:
        raise _bad(label, f"expected a number, got {value!r}") from None


def _bool(value: Any, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    raise _bad(label, f"expected true or false, got {value!r}")


def _bytes(value: Any, label: str) -> bytes:
    if not isinstance(value, str):
        raise _bad(label, "expected a base64 string")
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _bad(label, "expected a base64 string") from None


def _enum(enum: EnumDescriptor, value: Any, label: str) -> int:
    names = _enum_cache.get(enum)
    if names is None:
        names = {}
        for v in enum.values:
            names[v.name] = v.number
            wire = options.wire(v)
            if wire:
                names[wire] = v.number
        _enum_cache[enum] = names
    number = value
    if isinstance(value, str):
        if value in names:
            return names[value]
        number = parse_decimal(value)
    if isinstance(number, int) and not isinstance(number, bool) and number in names.values():
        return number
    raise _bad(label, f"unknown value {value!r}")


def fill_json_kind(message: Message, value: Any, label: str) -> None:
    """Fill a Struct, Value or ListValue (from any descriptor pool) with JSON."""
    kind = message.DESCRIPTOR.full_name
    if kind == "google.protobuf.Struct":
        if not isinstance(value, dict):
            raise _bad(label, "expected a JSON object")
        _fill_struct(message, value)
    elif kind == "google.protobuf.ListValue":
        if not isinstance(value, list):
            raise _bad(label, "expected a JSON array")
        for item in value:
            _fill_value(message.values.add(), item)  # type: ignore[attr-defined]
    else:
        _fill_value(message, value)


def fill_from_text(message: Message, text: str, label: str) -> None:
    """Fill a Struct / Value / ListValue / wrapper from query or path text."""
    kind = message.DESCRIPTOR.full_name
    if kind in WRAPPERS:
        fd = message.DESCRIPTOR.fields_by_name["value"]
        message.value = from_json(fd, text, label)  # type: ignore[attr-defined]
        return
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        if kind != "google.protobuf.Value":
            raise _bad(label, "expected JSON text") from None
        value = text
    fill_json_kind(message, value, label)


def _fill_struct(struct: Message, data: dict[str, Any]) -> None:
    fields = struct.fields  # type: ignore[attr-defined]
    for key, item in data.items():
        _fill_value(fields[key], item)


def _fill_value(target: Message, data: Any) -> None:
    if data is None:
        target.null_value = 0  # type: ignore[attr-defined]
    elif isinstance(data, bool):
        target.bool_value = data  # type: ignore[attr-defined]
    elif isinstance(data, int | float):
        target.number_value = float(data)  # type: ignore[attr-defined]
    elif isinstance(data, str):
        target.string_value = data  # type: ignore[attr-defined]
    elif isinstance(data, dict):
        sub = target.struct_value  # type: ignore[attr-defined]
        sub.SetInParent()
        _fill_struct(sub, data)
    else:
        sub = target.list_value  # type: ignore[attr-defined]
        sub.SetInParent()
        for item in data:
            _fill_value(sub.values.add(), item)
