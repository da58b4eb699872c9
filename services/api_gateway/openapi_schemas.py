"""JSON Schemas (OpenAPI 3.1) of protobuf messages and enums, in the sfmesh dialect. Pure.

A `SchemaBook` names every message and enum it is asked about once, under
`#/components/schemas/<name>` (the name inside its package, or the full name
when two packages collide), and answers `$ref`s to them. The schemas follow
marshal.py: fields by proto name and no others; an enum is its wire strings plus `null`;
an unset optional scalar or message field is `null` unless the field carries
`(sfmesh.v1.omit_when_unset)`; well-known types are plain JSON.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from google.protobuf.descriptor import FieldDescriptor as FD

from services.api_gateway import options
from services.api_gateway.marshal import WRAPPERS, is_map
from services.api_gateway.types import EnumDescriptor, FieldDescriptor, MessageDescriptor

Schema = dict[str, Any]

_INT32 = {"type": "integer", "format": "int32"}
_INT64 = {"type": "integer", "format": "int64"}
_SCALARS: dict[int, Schema] = {
    FD.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FD.TYPE_FLOAT: {"type": "number", "format": "float"},
    FD.TYPE_INT32: _INT32,
    FD.TYPE_SINT32: _INT32,
    FD.TYPE_SFIXED32: _INT32,
    FD.TYPE_INT64: _INT64,
    FD.TYPE_SINT64: _INT64,
    FD.TYPE_SFIXED64: _INT64,
    FD.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_UINT64: {"type": "integer", "minimum": 0},
    FD.TYPE_FIXED64: {"type": "integer", "minimum": 0},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BYTES: {"type": "string", "format": "byte"},
}
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Duration": {"type": "string", "description": 'Seconds, e.g. "1.5s".'},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
}


def special_schema(descriptor: MessageDescriptor) -> Schema | None:
    """The schema of a well-known or wrapper message type, else None."""
    known = _WELL_KNOWN.get(descriptor.full_name)
    if known is not None:
        return dict(known)
    if descriptor.full_name in WRAPPERS:
        return dict(_SCALARS[descriptor.fields_by_name["value"].type])
    return None


def nullable(schema: Schema) -> Schema:
    """`schema` or null."""
    if not schema:
        return schema
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return schema if "null" in kind else {**schema, "type": [*kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def error_schema() -> Schema:
    """The gateway's error object; a failed stream's last line holds it without `error`."""
    return {
        "type": "object",
        "description": "An error. HTTP status and gRPC code both; `error` repeats `message`.",
        "properties": {
            "error": {"type": "string", "description": "The message (Shaken Fist's key)."},
            "status": {"type": "integer", "description": "The HTTP status."},
            "code": {"type": "integer", "description": "The gRPC status code."},
            "message": {"type": "string", "description": "What went wrong."},
            "details": {
                "type": "array",
                "items": {"type": "object"},
                "description": "google.rpc details (ErrorInfo, RetryInfo, ...) as JSON.",
            },
        },
        "required": ["status", "code", "message", "details"],
    }


class SchemaBook:
    """Collects the `components.schemas` of every message and enum asked about."""

    def __init__(self, comments: dict[str, str], *, reserved: Collection[str] = ()) -> None:
        self.comments = comments
        self.schemas: dict[str, Schema] = {}
        self._names: dict[str, str] = {}
        self._taken: set[str] = set(reserved)

    def name_of(self, descriptor: MessageDescriptor | EnumDescriptor) -> str:
        """The component name of a message or enum type."""
        full = descriptor.full_name
        name = self._names.get(full)
        if name is None:
            package = descriptor.file.package
            name = full[len(package) + 1 :] if package else full
            if name in self._taken:
                name = full
            self._names[full] = name
            self._taken.add(name)
        return name

    def message_schema(self, descriptor: MessageDescriptor) -> Schema:
        """A well-known type's schema, else a `$ref` to the message's component."""
        special = special_schema(descriptor)
        if special is not None:
            return special
        name = self.name_of(descriptor)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder: recursive types end here
            self.schemas[name] = self.object_schema(descriptor)
        return {"$ref": f"#/components/schemas/{name}"}

    def enum_schema(self, descriptor: EnumDescriptor) -> Schema:
        """A `$ref` to the enum's component: its wire strings and null."""
        name = self.name_of(descriptor)
        if name not in self.schemas:
            wires: list[str | None] = []
            notes = []
            for value in descriptor.values:
                wire = None if value.number == 0 else options.wire(value) or value.name
                if wire is not None:
                    wires.append(wire)
                note = self.comments.get(f"{descriptor.full_name}.{value.name}", "")
                notes.append(f"- `{wire or 'null'}`: {' '.join(note.split())}".rstrip(": "))
            about = self.comments.get(descriptor.full_name, "")
            schema: Schema = {"type": ["string", "null"], "enum": [*wires, None]}
            schema["description"] = "\n\n".join(p for p in (about, "\n".join(notes)) if p)
            self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def object_schema(
        self, descriptor: MessageDescriptor, *, exclude: Collection[str] = ()
    ) -> Schema:
        """A message as a JSON object (fields in number order), without `exclude`."""
        fields = sorted(descriptor.fields, key=lambda f: f.number)
        schema: Schema = {"type": "object"}
        about = self.comments.get(descriptor.full_name)
        if about:
            schema["description"] = about
        schema["properties"] = {
            fd.name: self.field_schema(fd) for fd in fields if fd.name not in exclude
        }
        # Unknown keys are a 400 on the way in and never written on the way out.
        schema["additionalProperties"] = False
        return schema

    def value_schema(self, fd: FieldDescriptor) -> Schema:
        """One value of a field (an element, for repeated fields), ignoring presence."""
        if fd.type == FD.TYPE_ENUM:
            return self.enum_schema(fd.enum_type)
        if fd.type in (FD.TYPE_MESSAGE, FD.TYPE_GROUP):
            return self.message_schema(fd.message_type)
        return dict(_SCALARS[fd.type])

    def field_schema(self, fd: FieldDescriptor) -> Schema:
        """A field as its JSON key holds it, with the field's comment."""
        if is_map(fd):
            value = self.value_schema(fd.message_type.fields_by_name["value"])
            schema: Schema = {"type": "object", "additionalProperties": value}
        elif fd.is_repeated:
            schema = {"type": "array", "items": self.value_schema(fd)}
        else:
            schema = self.value_schema(fd)
            if fd.has_presence and not options.omit_when_unset(fd):
                schema = nullable(schema)
        about = self.comments.get(fd.full_name)
        if about:
            schema["description"] = about
        return schema
