from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import agent_operation_pb2 as _agent_operation_pb2
from sfmesh.v1 import artifact_pb2 as _artifact_pb2
from sfmesh.v1 import instance_pb2 as _instance_pb2
from sfmesh.v1 import network_service_pb2 as _network_service_pb2
from sfmesh.v1 import node_service_pb2 as _node_service_pb2
from sfmesh.v1 import scheduler_service_pb2 as _scheduler_service_pb2
from sfmesh.v1 import transfer_service_pb2 as _transfer_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KeyRecord(_message.Message):
    __slots__ = ("name", "bcrypt_hash", "nonce")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BCRYPT_HASH_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    bcrypt_hash: bytes
    nonce: str
    def __init__(self, name: _Optional[str] = ..., bcrypt_hash: _Optional[bytes] = ..., nonce: _Optional[str] = ...) -> None: ...

class NamespaceRecord(_message.Message):
    __slots__ = ("name", "state", "keys", "trust", "metadata")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    TRUST_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    keys: _containers.RepeatedCompositeFieldContainer[KeyRecord]
    trust: _containers.RepeatedScalarFieldContainer[str]
    metadata: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[KeyRecord, _Mapping]]] = ..., trust: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class InstanceRecord(_message.Message):
    __slots__ = ("instance", "created_at", "deleted_at", "create_request_id", "torn_down_at", "disk_sources", "nvram_blob_uuid", "vdi_host", "create_traceparent")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TORN_DOWN_AT_FIELD_NUMBER: _ClassVar[int]
    DISK_SOURCES_FIELD_NUMBER: _ClassVar[int]
    NVRAM_BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    VDI_HOST_FIELD_NUMBER: _ClassVar[int]
    CREATE_TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    instance: _instance_pb2.Instance
    created_at: float
    deleted_at: float
    create_request_id: str
    torn_down_at: float
    disk_sources: _containers.RepeatedCompositeFieldContainer[DiskSource]
    nvram_blob_uuid: str
    vdi_host: str
    create_traceparent: str
    def __init__(self, instance: _Optional[_Union[_instance_pb2.Instance, _Mapping]] = ..., created_at: _Optional[float] = ..., deleted_at: _Optional[float] = ..., create_request_id: _Optional[str] = ..., torn_down_at: _Optional[float] = ..., disk_sources: _Optional[_Iterable[_Union[DiskSource, _Mapping]]] = ..., nvram_blob_uuid: _Optional[str] = ..., vdi_host: _Optional[str] = ..., create_traceparent: _Optional[str] = ...) -> None: ...

class IdempotencyRecord(_message.Message):
    __slots__ = ("request_hash", "instance_uuid", "expires_at")
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    request_hash: bytes
    instance_uuid: str
    expires_at: float
    def __init__(self, request_hash: _Optional[bytes] = ..., instance_uuid: _Optional[str] = ..., expires_at: _Optional[float] = ...) -> None: ...

class NodeRecord(_message.Message):
    __slots__ = ("name", "state", "facts", "lastseen", "last_report", "metadata", "deleted_at", "retired_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    LASTSEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_REPORT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    RETIRED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: _node_service_pb2.NodeState
    facts: _scheduler_service_pb2.HypervisorFacts
    lastseen: float
    last_report: _scheduler_service_pb2.ReportNodeRequest
    metadata: _struct_pb2.Struct
    deleted_at: float
    retired_at: float
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[_node_service_pb2.NodeState, str]] = ..., facts: _Optional[_Union[_scheduler_service_pb2.HypervisorFacts, _Mapping]] = ..., lastseen: _Optional[float] = ..., last_report: _Optional[_Union[_scheduler_service_pb2.ReportNodeRequest, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., deleted_at: _Optional[float] = ..., retired_at: _Optional[float] = ...) -> None: ...

class ProcessMetricsRecord(_message.Message):
    __slots__ = ("metrics", "recorded_at")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    metrics: _struct_pb2.Struct
    recorded_at: float
    def __init__(self, metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., recorded_at: _Optional[float] = ...) -> None: ...

class SchedulerPolicyRecord(_message.Message):
    __slots__ = ("cpu_overcommit_ratio", "ram_reserved_mib", "min_free_disk_gib")
    CPU_OVERCOMMIT_RATIO_FIELD_NUMBER: _ClassVar[int]
    RAM_RESERVED_MIB_FIELD_NUMBER: _ClassVar[int]
    MIN_FREE_DISK_GIB_FIELD_NUMBER: _ClassVar[int]
    cpu_overcommit_ratio: float
    ram_reserved_mib: int
    min_free_disk_gib: int
    def __init__(self, cpu_overcommit_ratio: _Optional[float] = ..., ram_reserved_mib: _Optional[int] = ..., min_free_disk_gib: _Optional[int] = ...) -> None: ...

class NetworkRecord(_message.Message):
    __slots__ = ("network", "created_at", "deleted_at")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    network: _network_service_pb2.Network
    created_at: float
    deleted_at: float
    def __init__(self, network: _Optional[_Union[_network_service_pb2.Network, _Mapping]] = ..., created_at: _Optional[float] = ..., deleted_at: _Optional[float] = ...) -> None: ...

class AddressRecord(_message.Message):
    __slots__ = ("reservation",)
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    reservation: _network_service_pb2.AddressReservation
    def __init__(self, reservation: _Optional[_Union[_network_service_pb2.AddressReservation, _Mapping]] = ...) -> None: ...

class VersionRecord(_message.Message):
    __slots__ = ("index", "blob_uuid")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    index: int
    blob_uuid: str
    def __init__(self, index: _Optional[int] = ..., blob_uuid: _Optional[str] = ...) -> None: ...

class ArtifactRecord(_message.Message):
    __slots__ = ("artifact", "versions", "last_index", "created_at", "deleted_at", "fetch_node", "fetch_requested_at", "checked_at")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_INDEX_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    FETCH_NODE_FIELD_NUMBER: _ClassVar[int]
    FETCH_REQUESTED_AT_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    artifact: _artifact_pb2.Artifact
    versions: _containers.RepeatedCompositeFieldContainer[VersionRecord]
    last_index: int
    created_at: float
    deleted_at: float
    fetch_node: str
    fetch_requested_at: float
    checked_at: float
    def __init__(self, artifact: _Optional[_Union[_artifact_pb2.Artifact, _Mapping]] = ..., versions: _Optional[_Iterable[_Union[VersionRecord, _Mapping]]] = ..., last_index: _Optional[int] = ..., created_at: _Optional[float] = ..., deleted_at: _Optional[float] = ..., fetch_node: _Optional[str] = ..., fetch_requested_at: _Optional[float] = ..., checked_at: _Optional[float] = ...) -> None: ...

class BlobRecord(_message.Message):
    __slots__ = ("blob", "created_at", "deleted_at", "maker_node", "artifact_uuid", "owner_namespace", "expires_at")
    BLOB_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    MAKER_NODE_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_UUID_FIELD_NUMBER: _ClassVar[int]
    OWNER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    blob: _artifact_pb2.Blob
    created_at: float
    deleted_at: float
    maker_node: str
    artifact_uuid: str
    owner_namespace: str
    expires_at: float
    def __init__(self, blob: _Optional[_Union[_artifact_pb2.Blob, _Mapping]] = ..., created_at: _Optional[float] = ..., deleted_at: _Optional[float] = ..., maker_node: _Optional[str] = ..., artifact_uuid: _Optional[str] = ..., owner_namespace: _Optional[str] = ..., expires_at: _Optional[float] = ...) -> None: ...

class DiskSource(_message.Message):
    __slots__ = ("artifact_uuid", "blob_uuid")
    ARTIFACT_UUID_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    artifact_uuid: str
    blob_uuid: str
    def __init__(self, artifact_uuid: _Optional[str] = ..., blob_uuid: _Optional[str] = ...) -> None: ...

class UploadRecord(_message.Message):
    __slots__ = ("upload", "namespace", "updated_at")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    upload: _transfer_service_pb2.Upload
    namespace: str
    updated_at: float
    def __init__(self, upload: _Optional[_Union[_transfer_service_pb2.Upload, _Mapping]] = ..., namespace: _Optional[str] = ..., updated_at: _Optional[float] = ...) -> None: ...

class ReservationRecord(_message.Message):
    __slots__ = ("node", "instance_uuid", "cpus", "memory_mib", "disk_gib", "namespace", "tags", "expires_at")
    NODE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    DISK_GIB_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    node: str
    instance_uuid: str
    cpus: int
    memory_mib: int
    disk_gib: int
    namespace: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    expires_at: float
    def __init__(self, node: _Optional[str] = ..., instance_uuid: _Optional[str] = ..., cpus: _Optional[int] = ..., memory_mib: _Optional[int] = ..., disk_gib: _Optional[int] = ..., namespace: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., expires_at: _Optional[float] = ...) -> None: ...

class HotplugRecord(_message.Message):
    __slots__ = ("instance_uuid", "interface_uuid", "started_at", "request_id")
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_UUID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    interface_uuid: str
    started_at: float
    request_id: str
    def __init__(self, instance_uuid: _Optional[str] = ..., interface_uuid: _Optional[str] = ..., started_at: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class AgentOperationRecord(_message.Message):
    __slots__ = ("operation", "node", "index_key", "output_blobs", "request_id", "deleted_at")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    INDEX_KEY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BLOBS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    operation: _agent_operation_pb2.AgentOperation
    node: str
    index_key: str
    output_blobs: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    deleted_at: float
    def __init__(self, operation: _Optional[_Union[_agent_operation_pb2.AgentOperation, _Mapping]] = ..., node: _Optional[str] = ..., index_key: _Optional[str] = ..., output_blobs: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., deleted_at: _Optional[float] = ...) -> None: ...
