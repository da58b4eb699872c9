from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import event_pb2 as _event_pb2
from sfmesh.v1 import instance_pb2 as _instance_pb2
from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NetworkState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NETWORK_STATE_UNSPECIFIED: _ClassVar[NetworkState]
    NETWORK_STATE_INITIAL: _ClassVar[NetworkState]
    NETWORK_STATE_CREATED: _ClassVar[NetworkState]
    NETWORK_STATE_DELETE_WAIT: _ClassVar[NetworkState]
    NETWORK_STATE_DELETED: _ClassVar[NetworkState]
    NETWORK_STATE_ERROR: _ClassVar[NetworkState]
NETWORK_STATE_UNSPECIFIED: NetworkState
NETWORK_STATE_INITIAL: NetworkState
NETWORK_STATE_CREATED: NetworkState
NETWORK_STATE_DELETE_WAIT: NetworkState
NETWORK_STATE_DELETED: NetworkState
NETWORK_STATE_ERROR: NetworkState

class Network(_message.Message):
    __slots__ = ("uuid", "state", "version", "name", "namespace", "netblock", "provide_dhcp", "provide_nat", "provide_dns", "floating_gateway", "vxlan_id", "metadata")
    UUID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NETBLOCK_FIELD_NUMBER: _ClassVar[int]
    PROVIDE_DHCP_FIELD_NUMBER: _ClassVar[int]
    PROVIDE_NAT_FIELD_NUMBER: _ClassVar[int]
    PROVIDE_DNS_FIELD_NUMBER: _ClassVar[int]
    FLOATING_GATEWAY_FIELD_NUMBER: _ClassVar[int]
    VXLAN_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    state: NetworkState
    version: int
    name: str
    namespace: str
    netblock: str
    provide_dhcp: bool
    provide_nat: bool
    provide_dns: bool
    floating_gateway: str
    vxlan_id: int
    metadata: _struct_pb2.Struct
    def __init__(self, uuid: _Optional[str] = ..., state: _Optional[_Union[NetworkState, str]] = ..., version: _Optional[int] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., netblock: _Optional[str] = ..., provide_dhcp: _Optional[bool] = ..., provide_nat: _Optional[bool] = ..., provide_dns: _Optional[bool] = ..., floating_gateway: _Optional[str] = ..., vxlan_id: _Optional[int] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[Network]
    def __init__(self, networks: _Optional[_Iterable[_Union[Network, _Mapping]]] = ...) -> None: ...

class CreateNetworkRequest(_message.Message):
    __slots__ = ("netblock", "name", "namespace", "provide_dhcp", "provide_nat", "provide_dns")
    NETBLOCK_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PROVIDE_DHCP_FIELD_NUMBER: _ClassVar[int]
    PROVIDE_NAT_FIELD_NUMBER: _ClassVar[int]
    PROVIDE_DNS_FIELD_NUMBER: _ClassVar[int]
    netblock: str
    name: str
    namespace: str
    provide_dhcp: bool
    provide_nat: bool
    provide_dns: bool
    def __init__(self, netblock: _Optional[str] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., provide_dhcp: _Optional[bool] = ..., provide_nat: _Optional[bool] = ..., provide_dns: _Optional[bool] = ...) -> None: ...

class GetNetworkRequest(_message.Message):
    __slots__ = ("ref", "namespace")
    REF_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    namespace: str
    def __init__(self, ref: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class DeleteNetworkRequest(_message.Message):
    __slots__ = ("ref", "namespace")
    REF_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    namespace: str
    def __init__(self, ref: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class DeleteAllNetworksRequest(_message.Message):
    __slots__ = ("confirm", "namespace", "clean_wait")
    CONFIRM_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    CLEAN_WAIT_FIELD_NUMBER: _ClassVar[int]
    confirm: bool
    namespace: str
    clean_wait: bool
    def __init__(self, confirm: _Optional[bool] = ..., namespace: _Optional[str] = ..., clean_wait: _Optional[bool] = ...) -> None: ...

class DeleteAllNetworksResponse(_message.Message):
    __slots__ = ("uuids",)
    UUIDS_FIELD_NUMBER: _ClassVar[int]
    uuids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, uuids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetNetworkMetadataRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetNetworkMetadataResponse(_message.Message):
    __slots__ = ("metadata",)
    METADATA_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SetNetworkMetadataRequest(_message.Message):
    __slots__ = ("ref", "key", "value")
    REF_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    key: str
    value: _struct_pb2.Value
    def __init__(self, ref: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class DeleteNetworkMetadataRequest(_message.Message):
    __slots__ = ("ref", "key")
    REF_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ref: str
    key: str
    def __init__(self, ref: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class ListNetworkAddressesRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class AddressReservation(_message.Message):
    __slots__ = ("address", "comment", "type", "user", "when")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    address: str
    comment: str
    type: str
    user: _containers.RepeatedScalarFieldContainer[str]
    when: float
    def __init__(self, address: _Optional[str] = ..., comment: _Optional[str] = ..., type: _Optional[str] = ..., user: _Optional[_Iterable[str]] = ..., when: _Optional[float] = ...) -> None: ...

class ListNetworkAddressesResponse(_message.Message):
    __slots__ = ("addresses",)
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.RepeatedCompositeFieldContainer[AddressReservation]
    def __init__(self, addresses: _Optional[_Iterable[_Union[AddressReservation, _Mapping]]] = ...) -> None: ...

class PingNetworkAddressRequest(_message.Message):
    __slots__ = ("ref", "address")
    REF_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ref: str
    address: str
    def __init__(self, ref: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class PingNetworkAddressResponse(_message.Message):
    __slots__ = ("stdout", "stderr")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    stdout: _containers.RepeatedScalarFieldContainer[str]
    stderr: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, stdout: _Optional[_Iterable[str]] = ..., stderr: _Optional[_Iterable[str]] = ...) -> None: ...

class ListNetworkEventsRequest(_message.Message):
    __slots__ = ("ref", "event_type", "limit")
    REF_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ref: str
    event_type: _event_pb2.EventType
    limit: int
    def __init__(self, ref: _Optional[str] = ..., event_type: _Optional[_Union[_event_pb2.EventType, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListNetworkEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ...) -> None: ...

class ListNetworkInterfacesRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class ListNetworkInterfacesResponse(_message.Message):
    __slots__ = ("interfaces",)
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    interfaces: _containers.RepeatedCompositeFieldContainer[_instance_pb2.Interface]
    def __init__(self, interfaces: _Optional[_Iterable[_Union[_instance_pb2.Interface, _Mapping]]] = ...) -> None: ...

class GetInterfaceRequest(_message.Message):
    __slots__ = ("uuid",)
    UUID_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    def __init__(self, uuid: _Optional[str] = ...) -> None: ...

class GetInterfaceMetadataRequest(_message.Message):
    __slots__ = ("uuid",)
    UUID_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    def __init__(self, uuid: _Optional[str] = ...) -> None: ...

class GetInterfaceMetadataResponse(_message.Message):
    __slots__ = ("metadata",)
    METADATA_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SetInterfaceMetadataRequest(_message.Message):
    __slots__ = ("uuid", "key", "value")
    UUID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    key: str
    value: _struct_pb2.Value
    def __init__(self, uuid: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class DeleteInterfaceMetadataRequest(_message.Message):
    __slots__ = ("uuid", "key")
    UUID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    key: str
    def __init__(self, uuid: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class FloatInterfaceRequest(_message.Message):
    __slots__ = ("uuid",)
    UUID_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    def __init__(self, uuid: _Optional[str] = ...) -> None: ...

class DefloatInterfaceRequest(_message.Message):
    __slots__ = ("uuid",)
    UUID_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    def __init__(self, uuid: _Optional[str] = ...) -> None: ...
