from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import event_pb2 as _event_pb2
from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventRecord(_message.Message):
    __slots__ = ("event_id", "sequence", "object_type", "object_uuid", "type", "timestamp", "fqdn", "duration", "message", "extra")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_UUID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FQDN_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    sequence: int
    object_type: str
    object_uuid: str
    type: _event_pb2.EventType
    timestamp: float
    fqdn: str
    duration: float
    message: str
    extra: _struct_pb2.Struct
    def __init__(self, event_id: _Optional[str] = ..., sequence: _Optional[int] = ..., object_type: _Optional[str] = ..., object_uuid: _Optional[str] = ..., type: _Optional[_Union[_event_pb2.EventType, str]] = ..., timestamp: _Optional[float] = ..., fqdn: _Optional[str] = ..., duration: _Optional[float] = ..., message: _Optional[str] = ..., extra: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RecordRequest(_message.Message):
    __slots__ = ("producer_id", "events")
    PRODUCER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    producer_id: str
    events: _containers.RepeatedCompositeFieldContainer[EventRecord]
    def __init__(self, producer_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[EventRecord, _Mapping]]] = ...) -> None: ...

class RecordResponse(_message.Message):
    __slots__ = ("committed_sequence",)
    COMMITTED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    committed_sequence: int
    def __init__(self, committed_sequence: _Optional[int] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("object_type", "object_uuid", "event_type", "limit")
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_UUID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    object_type: str
    object_uuid: str
    event_type: _event_pb2.EventType
    limit: int
    def __init__(self, object_type: _Optional[str] = ..., object_uuid: _Optional[str] = ..., event_type: _Optional[_Union[_event_pb2.EventType, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("object_type", "object_uuid", "event_type", "cursor", "since")
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_UUID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    object_type: str
    object_uuid: str
    event_type: _event_pb2.EventType
    cursor: str
    since: float
    def __init__(self, object_type: _Optional[str] = ..., object_uuid: _Optional[str] = ..., event_type: _Optional[_Union[_event_pb2.EventType, str]] = ..., cursor: _Optional[str] = ..., since: _Optional[float] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("event", "cursor")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.Event
    cursor: str
    def __init__(self, event: _Optional[_Union[_event_pb2.Event, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...
