"""Response side: protobuf messages -> the sfmesh JSON dialect.

protobuf's own JSON printer breaks the dialect (camelCase, floats for integral
numbers, omitted fields), so the gateway renders messages itself:

* proto field names, every field present, in field-number order;
* unset optional scalars and unset message fields are `null`; a field marked
  `(sfmesh.v1.omit_when_unset)` is left out while unset;
* repeated fields are arrays, maps objects;
* enums are their `(sfmesh.v1.wire)` string (proto name when none), the zero
  value is `null`;
* Struct / Value / ListValue are plain JSON, integral numbers as integers;
* a `google.protobuf.Empty` answer is `null`.

A plan of per-field converters is built once per message type and cached.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf.descriptor import FieldDescriptor as FD
from google.protobuf.message import Message

from services.api_gateway import options
from services.api_gateway.types import FieldDescriptor, MessageDescriptor

Converter = Callable[[Any], Any]

WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)


@dataclass(frozen=True)
class MessagePlan:
    """How to render one message type, built once per type.

    `template` holds every key with its unset value, in field-number order;
    rendering copies it and overwrites the fields `ListFields()` reports as
    set, converting those that need it. Unset fields thus cost nothing.
    """

    template: dict[str, Any]
    fields: dict[FieldDescriptor, tuple[str, Converter | None]]
    """Per field: its JSON key, and its converter (None when the Python value
    is already JSON). Keyed by descriptor: cheaper than reading `fd.name`."""


_plans: dict[MessageDescriptor, MessagePlan] = {}


def to_json_bytes(message: Message, response_body: str = "") -> bytes:
    """Render a response message (or only its `response_body` field) as JSON bytes."""
    return orjson.dumps(to_json_value(message, response_body))


def to_json_value(message: Message, response_body: str = "") -> Any:
    """Render a response message as a JSON-ready Python value."""
    if message.DESCRIPTOR.full_name == "google.protobuf.Empty":
        return None
    rendered = _convert_message(message.DESCRIPTOR)(message)
    return rendered[response_body] if response_body else rendered


def render_message(message: Message) -> dict[str, Any]:
    """Render an ordinary message as a JSON object."""
    plan = plan_for(message.DESCRIPTOR)
    result = plan.template.copy()
    fields = plan.fields
    for fd, value in message.ListFields():
        name, convert = fields[fd]
        result[name] = value if convert is None else convert(value)
    return result


def plan_for(descriptor: MessageDescriptor) -> MessagePlan:
    """The cached rendering plan of a message type."""
    plan = _plans.get(descriptor)
    if plan is None:
        template: dict[str, Any] = {}
        fields: dict[FieldDescriptor, tuple[str, Converter | None]] = {}
        for fd in sorted(descriptor.fields, key=lambda f: f.number):
            if not options.omit_when_unset(fd):
                template[fd.name] = _unset_value(fd)
            fields[fd] = (fd.name, _field_converter(fd))
        plan = MessagePlan(template, fields)
        _plans[descriptor] = plan
    return plan


def _unset_value(fd: FieldDescriptor) -> Any:
    """What a field renders as when `ListFields()` does not report it."""
    if is_map(fd):
        return {}
    if fd.is_repeated:
        return []
    if fd.has_presence or fd.type == FD.TYPE_ENUM:
        return None
    if fd.type == FD.TYPE_BYTES:
        return ""
    return fd.default_value


def _field_converter(fd: FieldDescriptor) -> Converter | None:
    """The converter of a whole field's value, or None when none is needed."""
    if is_map(fd):
        key_fd = fd.message_type.fields_by_name["key"]
        value_converter = _converter(fd.message_type.fields_by_name["value"])
        return lambda entries: {_map_key(k, key_fd): value_converter(v) for k, v in entries.items()}
    convert = _converter(fd)
    if fd.is_repeated:
        if convert is _identity:
            return list
        return lambda values: [convert(v) for v in values]
    return None if convert is _identity else convert


def is_map(fd: FieldDescriptor) -> bool:
    """Whether a field is a protobuf map."""
    return bool(
        fd.is_repeated and fd.type == FD.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry
    )


def _map_key(key: Any, key_fd: FieldDescriptor) -> str:
    if key_fd.type == FD.TYPE_BOOL:
        return "true" if key else "false"
    return str(key)


def _converter(fd: FieldDescriptor) -> Converter:
    """A function from one (non-repeated) value of this field to JSON."""
    if fd.type == FD.TYPE_ENUM:
        return enum_converter(fd)
    if fd.type == FD.TYPE_MESSAGE:
        return _convert_message(fd.message_type)
    if fd.type == FD.TYPE_BYTES:
        return _bytes
    return _identity


def enum_converter(fd: FieldDescriptor) -> Converter:
    """Enum number -> wire string; the zero value -> None; unknown numbers stay numbers."""
    names: dict[int, str | None] = {}
    for value in fd.enum_type.values:
        wire = options.wire(value)
        names[value.number] = None if value.number == 0 else (wire or value.name)

    def convert(number: int) -> Any:
        return names.get(number, number)

    return convert


def _convert_message(descriptor: MessageDescriptor) -> Converter:
    special = _SPECIAL.get(descriptor.full_name)
    if special is not None:
        return special
    if descriptor.full_name in WRAPPERS:
        return _converter(descriptor.fields_by_name["value"])
    return render_message


def _identity(value: Any) -> Any:
    return value


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _number(value: float) -> Any:
    if math.isfinite(value) and value == int(value) and abs(value) < 2**63:
        return int(value)
    return value


def value_to_json(value: Any) -> Any:
    """google.protobuf.Value (from any pool) -> plain JSON."""
    kind = value.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "number_value":
        return _number(value.number_value)
    if kind == "struct_value":
        return struct_to_json(value.struct_value)
    if kind == "list_value":
        return list_to_json(value.list_value)
    return getattr(value, kind)


def struct_to_json(struct: Any) -> dict[str, Any]:
    """google.protobuf.Struct -> a JSON object."""
    return {key: value_to_json(v) for key, v in struct.fields.items()}


def list_to_json(values: Any) -> list[Any]:
    """google.protobuf.ListValue -> a JSON array."""
    return [value_to_json(v) for v in values.values]


def _duration(message: Message) -> str:
    seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
    if not nanos:
        return f"{seconds}s"
    sign = "-" if seconds < 0 or nanos < 0 else ""
    return f"{sign}{abs(seconds)}.{abs(nanos):09d}".rstrip("0") + "s"


def _timestamp(message: Message) -> str:
    seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
    moment = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{moment}{fraction}Z"


def _empty(message: Message) -> dict[str, Any]:
    return {}


_SPECIAL: dict[str, Converter] = {
    "google.protobuf.Struct": struct_to_json,
    "google.protobuf.Value": value_to_json,
    "google.protobuf.ListValue": list_to_json,
    "google.protobuf.Duration": _duration,
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Empty": _empty,
}
