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

class GetNodeProcessMetricsRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class GetNodeProcessMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: _struct_pb2.Struct
    def __init__(self, metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetClusterResourcesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClusterResources(_message.Message):
    __slots__ = ("total", "per_node")
    class PerNodeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: NodeResources
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[NodeResources, _Mapping]] = ...) -> None: ...
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PER_NODE_FIELD_NUMBER: _ClassVar[int]
    total: ResourceTotals
    per_node: _containers.MessageMap[str, NodeResources]
    def __init__(self, total: _Optional[_Union[ResourceTotals, _Mapping]] = ..., per_node: _Optional[_Mapping[str, NodeResources]] = ...) -> None: ...

class ResourceTotals(_message.Message):
    __slots__ = ("cpu_available", "ram_available")
    CPU_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    RAM_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    cpu_available: int
    ram_available: int
    def __init__(self, cpu_available: _Optional[int] = ..., ram_available: _Optional[int] = ...) -> None: ...

class NodeResources(_message.Message):
    __slots__ = ("cpu_max_per_instance", "cpu_available", "cpu_load_1", "cpu_load_5", "cpu_load_15", "ram_max_per_instance", "ram_max", "ram_available", "disk_available", "instances_total", "instances_active")
    CPU_MAX_PER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    CPU_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CPU_LOAD_1_FIELD_NUMBER: _ClassVar[int]
    CPU_LOAD_5_FIELD_NUMBER: _ClassVar[int]
    CPU_LOAD_15_FIELD_NUMBER: _ClassVar[int]
    RAM_MAX_PER_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    RAM_MAX_FIELD_NUMBER: _ClassVar[int]
    RAM_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    DISK_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    cpu_max_per_instance: int
    cpu_available: int
    cpu_load_1: float
    cpu_load_5: float
    cpu_load_15: float
    ram_max_per_instance: int
    ram_max: int
    ram_available: int
    disk_available: float
    instances_total: int
    instances_active: int
    def __init__(self, cpu_max_per_instance: _Optional[int] = ..., cpu_available: _Optional[int] = ..., cpu_load_1: _Optional[float] = ..., cpu_load_5: _Optional[float] = ..., cpu_load_15: _Optional[float] = ..., ram_max_per_instance: _Optional[int] = ..., ram_max: _Optional[int] = ..., ram_available: _Optional[int] = ..., disk_available: _Optional[float] = ..., instances_total: _Optional[int] = ..., instances_active: _Optional[int] = ...) -> None: ...
