from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import event_pb2 as _event_pb2
from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_STATE_UNSPECIFIED: _ClassVar[NodeState]
    NODE_STATE_CREATED: _ClassVar[NodeState]
    NODE_STATE_MISSING: _ClassVar[NodeState]
    NODE_STATE_STOPPING: _ClassVar[NodeState]
    NODE_STATE_STOPPED: _ClassVar[NodeState]
    NODE_STATE_DELETED: _ClassVar[NodeState]
    NODE_STATE_ERROR: _ClassVar[NodeState]
NODE_STATE_UNSPECIFIED: NodeState
NODE_STATE_CREATED: NodeState
NODE_STATE_MISSING: NodeState
NODE_STATE_STOPPING: NodeState
NODE_STATE_STOPPED: NodeState
NODE_STATE_DELETED: NodeState
NODE_STATE_ERROR: NodeState

class Node(_message.Message):
    __slots__ = ("uuid", "state", "metadata", "version", "name", "ip", "lastseen", "release", "is_hypervisor", "is_etcd_master", "is_network_node", "is_eventlog_node", "is_cluster_maintainer")
    UUID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    LASTSEEN_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    IS_HYPERVISOR_FIELD_NUMBER: _ClassVar[int]
    IS_ETCD_MASTER_FIELD_NUMBER: _ClassVar[int]
    IS_NETWORK_NODE_FIELD_NUMBER: _ClassVar[int]
    IS_EVENTLOG_NODE_FIELD_NUMBER: _ClassVar[int]
    IS_CLUSTER_MAINTAINER_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    state: NodeState
    metadata: _struct_pb2.Struct
    version: int
    name: str
    ip: str
    lastseen: float
    release: str
    is_hypervisor: bool
    is_etcd_master: bool
    is_network_node: bool
    is_eventlog_node: bool
    is_cluster_maintainer: bool
    def __init__(self, uuid: _Optional[str] = ..., state: _Optional[_Union[NodeState, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., version: _Optional[int] = ..., name: _Optional[str] = ..., ip: _Optional[str] = ..., lastseen: _Optional[float] = ..., release: _Optional[str] = ..., is_hypervisor: _Optional[bool] = ..., is_etcd_master: _Optional[bool] = ..., is_network_node: _Optional[bool] = ..., is_eventlog_node: _Optional[bool] = ..., is_cluster_maintainer: _Optional[bool] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class GetNodeRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class DeleteNodeRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class ListNodeEventsRequest(_message.Message):
    __slots__ = ("node", "event_type", "limit")
    NODE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    node: str
    event_type: _event_pb2.EventType
    limit: int
    def __init__(self, node: _Optional[str] = ..., event_type: _Optional[_Union[_event_pb2.EventType, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListNodeEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ...) -> None: ...

class GetNodeMetadataRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class GetNodeMetadataResponse(_message.Message):
    __slots__ = ("metadata",)
    METADATA_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SetNodeMetadataRequest(_message.Message):
    __slots__ = ("node", "key", "value")
    NODE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    node: str
    key: str
    value: _struct_pb2.Value
    def __init__(self, node: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class DeleteNodeMetadataRequest(_message.Message):
    __slots__ = ("node", "key")
    NODE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    node: str
    key: str
    def __init__(self, node: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...
