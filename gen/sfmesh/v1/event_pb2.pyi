from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_AUDIT: _ClassVar[EventType]
    EVENT_TYPE_MUTATE: _ClassVar[EventType]
    EVENT_TYPE_STATUS: _ClassVar[EventType]
    EVENT_TYPE_USAGE: _ClassVar[EventType]
    EVENT_TYPE_RESOURCES: _ClassVar[EventType]
    EVENT_TYPE_PRUNE: _ClassVar[EventType]
    EVENT_TYPE_HISTORIC: _ClassVar[EventType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_AUDIT: EventType
EVENT_TYPE_MUTATE: EventType
EVENT_TYPE_STATUS: EventType
EVENT_TYPE_USAGE: EventType
EVENT_TYPE_RESOURCES: EventType
EVENT_TYPE_PRUNE: EventType
EVENT_TYPE_HISTORIC: EventType

class Event(_message.Message):
    __slots__ = ("type", "timestamp", "fqdn", "duration", "message", "extra")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FQDN_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    type: EventType
    timestamp: float
    fqdn: str
    duration: float
    message: str
    extra: _struct_pb2.Struct
    def __init__(self, type: _Optional[_Union[EventType, str]] = ..., timestamp: _Optional[float] = ..., fqdn: _Optional[str] = ..., duration: _Optional[float] = ..., message: _Optional[str] = ..., extra: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
