from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import agent_operation_pb2 as _agent_operation_pb2
from sfmesh.v1 import artifact_pb2 as _artifact_pb2
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

class ChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_TYPE_UNSPECIFIED: _ClassVar[ChangeType]
    CHANGE_TYPE_EXISTING: _ClassVar[ChangeType]
    CHANGE_TYPE_CREATED: _ClassVar[ChangeType]
    CHANGE_TYPE_UPDATED: _ClassVar[ChangeType]
    CHANGE_TYPE_PURGED: _ClassVar[ChangeType]
CHANGE_TYPE_UNSPECIFIED: ChangeType
CHANGE_TYPE_EXISTING: ChangeType
CHANGE_TYPE_CREATED: ChangeType
CHANGE_TYPE_UPDATED: ChangeType
CHANGE_TYPE_PURGED: ChangeType

class ListInstancesRequest(_message.Message):
    __slots__ = ("all", "page_size", "page_token")
    ALL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    all: bool
    page_size: int
    page_token: str
    def __init__(self, all: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInstancesResponse(_message.Message):
    __slots__ = ("instances", "next_page_token")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[_instance_pb2.Instance]
    next_page_token: str
    def __init__(self, instances: _Optional[_Iterable[_Union[_instance_pb2.Instance, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetInstanceRequest(_message.Message):
    __slots__ = ("ref", "namespace")
    REF_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    namespace: str
    def __init__(self, ref: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class CreateInstanceRequest(_message.Message):
    __slots__ = ("name", "cpus", "memory", "disk", "network", "ssh_key", "user_data", "placed_on", "namespace", "video", "uefi", "secure_boot", "configdrive", "nvram_template", "metadata", "side_channels", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    SSH_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    PLACED_ON_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    UEFI_FIELD_NUMBER: _ClassVar[int]
    SECURE_BOOT_FIELD_NUMBER: _ClassVar[int]
    CONFIGDRIVE_FIELD_NUMBER: _ClassVar[int]
    NVRAM_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SIDE_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    cpus: int
    memory: int
    disk: _containers.RepeatedCompositeFieldContainer[_instance_pb2.DiskSpec]
    network: _containers.RepeatedCompositeFieldContainer[_instance_pb2.NetworkSpec]
    ssh_key: str
    user_data: str
    placed_on: str
    namespace: str
    video: _instance_pb2.VideoSpec
    uefi: bool
    secure_boot: bool
    configdrive: _instance_pb2.ConfigDrive
    nvram_template: str
    metadata: _struct_pb2.Struct
    side_channels: _struct_pb2.ListValue
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., cpus: _Optional[int] = ..., memory: _Optional[int] = ..., disk: _Optional[_Iterable[_Union[_instance_pb2.DiskSpec, _Mapping]]] = ..., network: _Optional[_Iterable[_Union[_instance_pb2.NetworkSpec, _Mapping]]] = ..., ssh_key: _Optional[str] = ..., user_data: _Optional[str] = ..., placed_on: _Optional[str] = ..., namespace: _Optional[str] = ..., video: _Optional[_Union[_instance_pb2.VideoSpec, _Mapping]] = ..., uefi: _Optional[bool] = ..., secure_boot: _Optional[bool] = ..., configdrive: _Optional[_Union[_instance_pb2.ConfigDrive, str]] = ..., nvram_template: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., side_channels: _Optional[_Union[_struct_pb2.ListValue, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class DeleteInstanceRequest(_message.Message):
    __slots__ = ("ref", "namespace")
    REF_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    namespace: str
    def __init__(self, ref: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class DeleteAllInstancesRequest(_message.Message):
    __slots__ = ("confirm", "namespace")
    CONFIRM_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    confirm: bool
    namespace: str
    def __init__(self, confirm: _Optional[bool] = ..., namespace: _Optional[str] = ...) -> None: ...

class DeleteAllInstancesResponse(_message.Message):
    __slots__ = ("uuids",)
    UUIDS_FIELD_NUMBER: _ClassVar[int]
    uuids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, uuids: _Optional[_Iterable[str]] = ...) -> None: ...

class RebootSoftRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class RebootHardRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class PowerOffRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class PowerOnRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class PauseRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class UnpauseRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class ListInstanceInterfacesRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class ListInstanceInterfacesResponse(_message.Message):
    __slots__ = ("interfaces",)
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    interfaces: _containers.RepeatedCompositeFieldContainer[_instance_pb2.Interface]
    def __init__(self, interfaces: _Optional[_Iterable[_Union[_instance_pb2.Interface, _Mapping]]] = ...) -> None: ...

class AddInstanceInterfaceRequest(_message.Message):
    __slots__ = ("ref", "network")
    REF_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    ref: str
    network: _instance_pb2.NetworkSpec
    def __init__(self, ref: _Optional[str] = ..., network: _Optional[_Union[_instance_pb2.NetworkSpec, _Mapping]] = ...) -> None: ...

class ListInstanceEventsRequest(_message.Message):
    __slots__ = ("ref", "event_type", "limit")
    REF_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ref: str
    event_type: _event_pb2.EventType
    limit: int
    def __init__(self, ref: _Optional[str] = ..., event_type: _Optional[_Union[_event_pb2.EventType, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListInstanceEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ...) -> None: ...

class GetInstanceMetadataRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetInstanceMetadataResponse(_message.Message):
    __slots__ = ("metadata",)
    METADATA_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SetInstanceMetadataRequest(_message.Message):
    __slots__ = ("ref", "key", "value")
    REF_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    key: str
    value: _struct_pb2.Value
    def __init__(self, ref: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class DeleteInstanceMetadataRequest(_message.Message):
    __slots__ = ("ref", "key")
    REF_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ref: str
    key: str
    def __init__(self, ref: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class GetConsoleDataRequest(_message.Message):
    __slots__ = ("ref", "length")
    REF_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    ref: str
    length: int
    def __init__(self, ref: _Optional[str] = ..., length: _Optional[int] = ...) -> None: ...

class ClearConsoleDataRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetVdiConsoleHelperRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetScreenshotRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetScreenshotResponse(_message.Message):
    __slots__ = ("blob_uuid",)
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    blob_uuid: str
    def __init__(self, blob_uuid: _Optional[str] = ...) -> None: ...

class CreateConsoleTicketRequest(_message.Message):
    __slots__ = ("ref", "ttl")
    REF_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    ref: str
    ttl: int
    def __init__(self, ref: _Optional[str] = ..., ttl: _Optional[int] = ...) -> None: ...

class ConsoleTicket(_message.Message):
    __slots__ = ("instance", "ticket", "url", "expires_at")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    instance: str
    ticket: str
    url: str
    expires_at: float
    def __init__(self, instance: _Optional[str] = ..., ticket: _Optional[str] = ..., url: _Optional[str] = ..., expires_at: _Optional[float] = ...) -> None: ...

class ConsoleStreamRequest(_message.Message):
    __slots__ = ("instance", "ticket", "data")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    instance: str
    ticket: str
    data: bytes
    def __init__(self, instance: _Optional[str] = ..., ticket: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ConsoleStreamResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ExecuteInAgentRequest(_message.Message):
    __slots__ = ("ref", "command_line", "deadline_seconds")
    REF_FIELD_NUMBER: _ClassVar[int]
    COMMAND_LINE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ref: str
    command_line: str
    deadline_seconds: int
    def __init__(self, ref: _Optional[str] = ..., command_line: _Optional[str] = ..., deadline_seconds: _Optional[int] = ...) -> None: ...

class GetFromAgentRequest(_message.Message):
    __slots__ = ("ref", "path", "deadline_seconds")
    REF_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ref: str
    path: str
    deadline_seconds: int
    def __init__(self, ref: _Optional[str] = ..., path: _Optional[str] = ..., deadline_seconds: _Optional[int] = ...) -> None: ...

class PutToAgentRequest(_message.Message):
    __slots__ = ("ref", "blob_uuid", "path", "mode", "deadline_seconds")
    REF_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ref: str
    blob_uuid: str
    path: str
    mode: _struct_pb2.Value
    deadline_seconds: int
    def __init__(self, ref: _Optional[str] = ..., blob_uuid: _Optional[str] = ..., path: _Optional[str] = ..., mode: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., deadline_seconds: _Optional[int] = ...) -> None: ...

class ListAgentOperationsRequest(_message.Message):
    __slots__ = ("ref", "all")
    REF_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    ref: str
    all: bool
    def __init__(self, ref: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class ListAgentOperationsResponse(_message.Message):
    __slots__ = ("operations",)
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[_agent_operation_pb2.AgentOperation]
    def __init__(self, operations: _Optional[_Iterable[_Union[_agent_operation_pb2.AgentOperation, _Mapping]]] = ...) -> None: ...

class GetAgentOperationRequest(_message.Message):
    __slots__ = ("uuid",)
    UUID_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    def __init__(self, uuid: _Optional[str] = ...) -> None: ...

class DeleteAgentOperationRequest(_message.Message):
    __slots__ = ("uuid",)
    UUID_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    def __init__(self, uuid: _Optional[str] = ...) -> None: ...

class WatchInstancesRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class WatchInstancesResponse(_message.Message):
    __slots__ = ("change", "instance")
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    change: ChangeType
    instance: _instance_pb2.Instance
    def __init__(self, change: _Optional[_Union[ChangeType, str]] = ..., instance: _Optional[_Union[_instance_pb2.Instance, _Mapping]] = ...) -> None: ...

class WatchInstanceRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class WatchInstanceResponse(_message.Message):
    __slots__ = ("change", "instance")
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    change: ChangeType
    instance: _instance_pb2.Instance
    def __init__(self, change: _Optional[_Union[ChangeType, str]] = ..., instance: _Optional[_Union[_instance_pb2.Instance, _Mapping]] = ...) -> None: ...

class WatchInstanceEventsRequest(_message.Message):
    __slots__ = ("ref", "event_type", "cursor", "since")
    REF_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    event_type: _event_pb2.EventType
    cursor: str
    since: float
    def __init__(self, ref: _Optional[str] = ..., event_type: _Optional[_Union[_event_pb2.EventType, str]] = ..., cursor: _Optional[str] = ..., since: _Optional[float] = ...) -> None: ...

class WatchInstanceEventsResponse(_message.Message):
    __slots__ = ("event", "cursor")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.Event
    cursor: str
    def __init__(self, event: _Optional[_Union[_event_pb2.Event, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class SnapshotInstanceRequest(_message.Message):
    __slots__ = ("ref", "all", "device", "thin", "max_versions")
    REF_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    THIN_FIELD_NUMBER: _ClassVar[int]
    MAX_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ref: str
    all: bool
    device: str
    thin: bool
    max_versions: int
    def __init__(self, ref: _Optional[str] = ..., all: _Optional[bool] = ..., device: _Optional[str] = ..., thin: _Optional[bool] = ..., max_versions: _Optional[int] = ...) -> None: ...

class SnapshotDevice(_message.Message):
    __slots__ = ("source_url", "artifact_uuid", "blob_uuid")
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_UUID_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    source_url: str
    artifact_uuid: str
    blob_uuid: str
    def __init__(self, source_url: _Optional[str] = ..., artifact_uuid: _Optional[str] = ..., blob_uuid: _Optional[str] = ...) -> None: ...

class SnapshotInstanceResponse(_message.Message):
    __slots__ = ("devices",)
    class DevicesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: SnapshotDevice
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[SnapshotDevice, _Mapping]] = ...) -> None: ...
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.MessageMap[str, SnapshotDevice]
    def __init__(self, devices: _Optional[_Mapping[str, SnapshotDevice]] = ...) -> None: ...

class ListInstanceSnapshotsRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class InstanceSnapshot(_message.Message):
    __slots__ = ("uuid", "state", "metadata", "version", "artifact_type", "source_url", "max_versions", "namespace", "shared", "blob_uuid", "size", "modified", "fetched_at", "depends_on", "transcodes", "locations", "reference_count", "sha512", "last_used", "instances", "format", "device", "created", "index")
    class TranscodesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    UUID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    MAX_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_FIELD_NUMBER: _ClassVar[int]
    FETCHED_AT_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    TRANSCODES_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SHA512_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    state: _artifact_pb2.BlobState
    metadata: _struct_pb2.Struct
    version: int
    artifact_type: _artifact_pb2.ArtifactType
    source_url: str
    max_versions: int
    namespace: str
    shared: bool
    blob_uuid: str
    size: int
    modified: float
    fetched_at: float
    depends_on: str
    transcodes: _containers.ScalarMap[str, str]
    locations: _containers.RepeatedScalarFieldContainer[str]
    reference_count: int
    sha512: str
    last_used: float
    instances: _containers.RepeatedScalarFieldContainer[str]
    format: str
    device: str
    created: float
    index: int
    def __init__(self, uuid: _Optional[str] = ..., state: _Optional[_Union[_artifact_pb2.BlobState, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., version: _Optional[int] = ..., artifact_type: _Optional[_Union[_artifact_pb2.ArtifactType, str]] = ..., source_url: _Optional[str] = ..., max_versions: _Optional[int] = ..., namespace: _Optional[str] = ..., shared: _Optional[bool] = ..., blob_uuid: _Optional[str] = ..., size: _Optional[int] = ..., modified: _Optional[float] = ..., fetched_at: _Optional[float] = ..., depends_on: _Optional[str] = ..., transcodes: _Optional[_Mapping[str, str]] = ..., locations: _Optional[_Iterable[str]] = ..., reference_count: _Optional[int] = ..., sha512: _Optional[str] = ..., last_used: _Optional[float] = ..., instances: _Optional[_Iterable[str]] = ..., format: _Optional[str] = ..., device: _Optional[str] = ..., created: _Optional[float] = ..., index: _Optional[int] = ...) -> None: ...

class ListInstanceSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[InstanceSnapshot]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[InstanceSnapshot, _Mapping]]] = ...) -> None: ...
