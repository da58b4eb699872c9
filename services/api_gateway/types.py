"""Type aliases shared by the gateway's modules.

Descriptors come from two pools (the default one in tests, a reflection-built
one in production) and protobuf's stubs give each pool its own descriptor
classes, so descriptor aliases are `Any` and name what is expected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

MessageDescriptor = Any
"""A message type's descriptor (`google.protobuf.descriptor.Descriptor`)."""
FieldDescriptor = Any
"""A field's descriptor."""
EnumDescriptor = Any
"""An enum type's descriptor."""
MethodDescriptor = Any
"""An RPC's descriptor."""
ServiceDescriptor = Any
"""A service's descriptor."""

Scope = MutableMapping[str, Any]
AsgiMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[AsgiMessage]]
Send = Callable[[AsgiMessage], Awaitable[None]]
