"""Reading the custom options the gateway acts on, from descriptors of any pool.

`google.api.http` rules route requests; the sfmesh options (see
protos/sfmesh/v1/options.proto) carry the REST facts: enum wire strings,
header-filled fields, keys omitted while unset, capability strings.
"""

from __future__ import annotations

from typing import Any

from google.api import annotations_pb2, http_pb2
from sfmesh.v1 import options_pb2

from services.api_gateway.types import FieldDescriptor, MethodDescriptor

_sfmesh_options: Any = options_pb2
_http: Any = annotations_pb2.http


def http_rule(method: MethodDescriptor) -> http_pb2.HttpRule | None:
    """The method's `google.api.http` rule, if any."""
    options = method.GetOptions()
    if not options.HasExtension(_http):
        return None
    rule: http_pb2.HttpRule = options.Extensions[_http]
    return rule


def capabilities(method: MethodDescriptor) -> list[str]:
    """The method's `(sfmesh.v1.capability)` strings."""
    return list(method.GetOptions().Extensions[_sfmesh_options.capability])


def wire(enum_value: Any) -> str:
    """An enum value's `(sfmesh.v1.wire)` string, or ""."""
    return str(enum_value.GetOptions().Extensions[_sfmesh_options.wire])


def http_header(fd: FieldDescriptor) -> str:
    """The request header a field is filled from (`(sfmesh.v1.http_header)`), or ""."""
    return str(fd.GetOptions().Extensions[_sfmesh_options.http_header])


def omit_when_unset(fd: FieldDescriptor) -> bool:
    """Whether the field's JSON key is left out while it is unset."""
    return bool(fd.GetOptions().Extensions[_sfmesh_options.omit_when_unset])
