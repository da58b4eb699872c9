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
class FieldPlan:
    """How to render one field of a message type."""

    name: str
    render: Callable[[Message], Any]
    presence: bool
    omit_when_unset: bool


_plans: dict[MessageDescriptor, tuple[FieldPlan, ...]] = {}


def to_json_bytes(message: Message, response_body: str = "") -> bytes:
    """Render a response message (or only its `response_body` field) as JSON bytes."""
    return orjson.dumps(to_json_value(message, response_body))


def to_json_value(message: Message, response_body: str = "") -> Any:
    """Render a response message as a JSON-ready Python value."""
    if response_body:
        for plan in plan_for(message.DESCRIPTOR):
            if plan.name == response_body:
                return _field_value(plan, message)
        raise KeyError(response_body)
    if message.DESCRIPTOR.full_name == "google.protobuf.Empty":
        return None
    return _convert_message(message.DESCRIPTOR)(message)


def render_message(message: Message) -> dict[str, Any]:
    """Render an ordinary message as a JSON object."""
    result: dict[str, Any] = {}
    for plan in plan_for(message.DESCRIPTOR):
        if plan.omit_when_unset and not message.HasField(plan.name):
            continue
        result[plan.name] = _field_value(plan, message)
    return result


def _field_value(plan: FieldPlan, message: Message) -> Any:
    if plan.presence and not message.HasField(plan.name):
        return None
    return plan.render(message)


def plan_for(descriptor: MessageDescriptor) -> tuple[FieldPlan, ...]:
    """The cached rendering plan of a message type."""
    plan = _plans.get(descriptor)
    if plan is None:
        plan = tuple(_plan_field(f) for f in sorted(descriptor.fields, key=lambda f: f.number))
        _plans[descriptor] = plan
    return plan


def _plan_field(fd: FieldDescriptor) -> FieldPlan:
    name = fd.name
    omit = options.omit_when_unset(fd)
    if is_map(fd):
        key_fd = fd.message_type.fields_by_name["key"]
        convert_value = _converter(fd.message_type.fields_by_name["value"])

        def render_map(msg: Message) -> Any:
            return {_map_key(k, key_fd): convert_value(v) for k, v in getattr(msg, name).items()}

        return FieldPlan(name, render_map, False, omit)
    convert = _converter(fd)
    if fd.is_repeated:

        def render_list(msg: Message) -> Any:
            return [convert(v) for v in getattr(msg, name)]

        return FieldPlan(name, render_list, False, omit)

    def render_one(msg: Message) -> Any:
        return convert(getattr(msg, name))

    return FieldPlan(name, render_one, bool(fd.has_presence), omit)


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
    if fd.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return float
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
