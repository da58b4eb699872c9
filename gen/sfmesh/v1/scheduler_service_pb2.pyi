from sfmesh.v1 import instance_pb2 as _instance_pb2
from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HypervisorFacts(_message.Message):
    __slots__ = ("node", "address", "kvm", "libvirt_version", "underlay_address")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    KVM_FIELD_NUMBER: _ClassVar[int]
    LIBVIRT_VERSION_FIELD_NUMBER: _ClassVar[int]
    UNDERLAY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node: str
    address: str
    kvm: bool
    libvirt_version: str
    underlay_address: str
    def __init__(self, node: _Optional[str] = ..., address: _Optional[str] = ..., kvm: _Optional[bool] = ..., libvirt_version: _Optional[str] = ..., underlay_address: _Optional[str] = ...) -> None: ...

class ReportNodeRequest(_message.Message):
    __slots__ = ("facts", "cpus_total", "cpus_used", "memory_total_mib", "memory_free_mib", "disk_free_gib", "load_1m", "instance_uuids", "load_5m", "load_15m", "instances_active")
    FACTS_FIELD_NUMBER: _ClassVar[int]
    CPUS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CPUS_USED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_MIB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FREE_MIB_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_GIB_FIELD_NUMBER: _ClassVar[int]
    LOAD_1M_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_UUIDS_FIELD_NUMBER: _ClassVar[int]
    LOAD_5M_FIELD_NUMBER: _ClassVar[int]
    LOAD_15M_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    facts: HypervisorFacts
    cpus_total: int
    cpus_used: int
    memory_total_mib: int
    memory_free_mib: int
    disk_free_gib: int
    load_1m: float
    instance_uuids: _containers.RepeatedScalarFieldContainer[str]
    load_5m: float
    load_15m: float
    instances_active: int
    def __init__(self, facts: _Optional[_Union[HypervisorFacts, _Mapping]] = ..., cpus_total: _Optional[int] = ..., cpus_used: _Optional[int] = ..., memory_total_mib: _Optional[int] = ..., memory_free_mib: _Optional[int] = ..., disk_free_gib: _Optional[int] = ..., load_1m: _Optional[float] = ..., instance_uuids: _Optional[_Iterable[str]] = ..., load_5m: _Optional[float] = ..., load_15m: _Optional[float] = ..., instances_active: _Optional[int] = ...) -> None: ...

class ReportNodeResponse(_message.Message):
    __slots__ = ("report_interval_seconds",)
    REPORT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    report_interval_seconds: int
    def __init__(self, report_interval_seconds: _Optional[int] = ...) -> None: ...

class PlaceInstanceRequest(_message.Message):
    __slots__ = ("instance_uuid", "cpus", "memory", "disk_gib", "placed_on", "disk", "request_id", "namespace", "affinity", "tags")
    class AffinityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    DISK_GIB_FIELD_NUMBER: _ClassVar[int]
    PLACED_ON_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    AFFINITY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    cpus: int
    memory: int
    disk_gib: int
    placed_on: str
    disk: _containers.RepeatedCompositeFieldContainer[_instance_pb2.DiskSpec]
    request_id: str
    namespace: str
    affinity: _containers.ScalarMap[str, int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, instance_uuid: _Optional[str] = ..., cpus: _Optional[int] = ..., memory: _Optional[int] = ..., disk_gib: _Optional[int] = ..., placed_on: _Optional[str] = ..., disk: _Optional[_Iterable[_Union[_instance_pb2.DiskSpec, _Mapping]]] = ..., request_id: _Optional[str] = ..., namespace: _Optional[str] = ..., affinity: _Optional[_Mapping[str, int]] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class PlaceInstanceResponse(_message.Message):
    __slots__ = ("node", "reservation_id")
    NODE_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    node: str
    reservation_id: str
    def __init__(self, node: _Optional[str] = ..., reservation_id: _Optional[str] = ...) -> None: ...

class ReleaseReservationRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    def __init__(self, reservation_id: _Optional[str] = ...) -> None: ...

class ReleaseReservationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
