"""The wire strings REST clients see for enum values, declared in the protos
as `(sfmesh.v1.wire)`. Pure."""

from __future__ import annotations

from google.protobuf.descriptor import EnumDescriptor
from sfmesh.v1 import options_pb2


def wire_name(enum: EnumDescriptor, number: int) -> str:
    """The wire string of one value (`InstanceState`, 5 -> "delete-wait"); the
    proto name when the value declares none. ValueError for unknown numbers."""
    value = enum.values_by_number.get(number)
    if value is None:
        raise ValueError(f"unknown {enum.name} value {number}")
    name = str(value.GetOptions().Extensions[options_pb2.wire])  # type: ignore[index]
    return name or value.name
