from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import artifact_pb2 as _artifact_pb2
from sfmesh.v1 import event_pb2 as _event_pb2
from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListArtifactsRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class ListArtifactsResponse(_message.Message):
    __slots__ = ("artifacts",)
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[_artifact_pb2.Artifact]
    def __init__(self, artifacts: _Optional[_Iterable[_Union[_artifact_pb2.Artifact, _Mapping]]] = ...) -> None: ...

class CacheArtifactRequest(_message.Message):
    __slots__ = ("url", "shared", "namespace")
    URL_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    url: str
    shared: bool
    namespace: str
    def __init__(self, url: _Optional[str] = ..., shared: _Optional[bool] = ..., namespace: _Optional[str] = ...) -> None: ...

class GetArtifactRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class DeleteArtifactRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class DeleteAllArtifactsRequest(_message.Message):
    __slots__ = ("confirm", "namespace")
    CONFIRM_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    confirm: bool
    namespace: str
    def __init__(self, confirm: _Optional[bool] = ..., namespace: _Optional[str] = ...) -> None: ...

class DeleteAllArtifactsResponse(_message.Message):
    __slots__ = ("uuids",)
    UUIDS_FIELD_NUMBER: _ClassVar[int]
    uuids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, uuids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListArtifactVersionsRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class ListArtifactVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_artifact_pb2.Blob]
    def __init__(self, versions: _Optional[_Iterable[_Union[_artifact_pb2.Blob, _Mapping]]] = ...) -> None: ...

class SetArtifactMaxVersionsRequest(_message.Message):
    __slots__ = ("ref", "max_versions")
    REF_FIELD_NUMBER: _ClassVar[int]
    MAX_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    ref: str
    max_versions: int
    def __init__(self, ref: _Optional[str] = ..., max_versions: _Optional[int] = ...) -> None: ...

class DeleteArtifactVersionRequest(_message.Message):
    __slots__ = ("ref", "version_id")
    REF_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    ref: str
    version_id: str
    def __init__(self, ref: _Optional[str] = ..., version_id: _Optional[str] = ...) -> None: ...

class ShareArtifactRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class UnshareArtifactRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetArtifactMetadataRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class GetArtifactMetadataResponse(_message.Message):
    __slots__ = ("metadata",)
    METADATA_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SetArtifactMetadataRequest(_message.Message):
    __slots__ = ("ref", "key", "value")
    REF_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ref: str
    key: str
    value: _struct_pb2.Value
    def __init__(self, ref: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class DeleteArtifactMetadataRequest(_message.Message):
    __slots__ = ("ref", "key")
    REF_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    ref: str
    key: str
    def __init__(self, ref: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class ListArtifactEventsRequest(_message.Message):
    __slots__ = ("ref", "event_type", "limit")
    REF_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ref: str
    event_type: _event_pb2.EventType
    limit: int
    def __init__(self, ref: _Optional[str] = ..., event_type: _Optional[_Union[_event_pb2.EventType, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListArtifactEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ...) -> None: ...

class UpdateLabelRequest(_message.Message):
    __slots__ = ("label_name", "blob_uuid", "max_versions")
    LABEL_NAME_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    MAX_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    label_name: str
    blob_uuid: str
    max_versions: int
    def __init__(self, label_name: _Optional[str] = ..., blob_uuid: _Optional[str] = ..., max_versions: _Optional[int] = ...) -> None: ...

class GetLabelRequest(_message.Message):
    __slots__ = ("label_name",)
    LABEL_NAME_FIELD_NUMBER: _ClassVar[int]
    label_name: str
    def __init__(self, label_name: _Optional[str] = ...) -> None: ...

class DeleteLabelRequest(_message.Message):
    __slots__ = ("label_name",)
    LABEL_NAME_FIELD_NUMBER: _ClassVar[int]
    label_name: str
    def __init__(self, label_name: _Optional[str] = ...) -> None: ...

class ListBlobsRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class ListBlobsResponse(_message.Message):
    __slots__ = ("blobs",)
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    blobs: _containers.RepeatedCompositeFieldContainer[_artifact_pb2.Blob]
    def __init__(self, blobs: _Optional[_Iterable[_Union[_artifact_pb2.Blob, _Mapping]]] = ...) -> None: ...

class GetBlobRequest(_message.Message):
    __slots__ = ("uuid",)
    UUID_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    def __init__(self, uuid: _Optional[str] = ...) -> None: ...

class FindBlobByChecksumRequest(_message.Message):
    __slots__ = ("algorithm", "hash")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    hash: str
    def __init__(self, algorithm: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class FindBlobByChecksumResponse(_message.Message):
    __slots__ = ("blob",)
    BLOB_FIELD_NUMBER: _ClassVar[int]
    blob: _artifact_pb2.Blob
    def __init__(self, blob: _Optional[_Union[_artifact_pb2.Blob, _Mapping]] = ...) -> None: ...

class GetBlobMetadataRequest(_message.Message):
    __slots__ = ("uuid",)
    UUID_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    def __init__(self, uuid: _Optional[str] = ...) -> None: ...

class GetBlobMetadataResponse(_message.Message):
    __slots__ = ("metadata",)
    METADATA_FIELD_NUMBER: _ClassVar[int]
    metadata: _struct_pb2.Struct
    def __init__(self, metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class SetBlobMetadataRequest(_message.Message):
    __slots__ = ("uuid", "key", "value")
    UUID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    key: str
    value: _struct_pb2.Value
    def __init__(self, uuid: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class DeleteBlobMetadataRequest(_message.Message):
    __slots__ = ("uuid", "key")
    UUID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    key: str
    def __init__(self, uuid: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class ListBlobEventsRequest(_message.Message):
    __slots__ = ("uuid", "event_type", "limit")
    UUID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    event_type: _event_pb2.EventType
    limit: int
    def __init__(self, uuid: _Optional[str] = ..., event_type: _Optional[_Union[_event_pb2.EventType, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListBlobEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.Event, _Mapping]]] = ...) -> None: ...

class GetBlobChecksumRequest(_message.Message):
    __slots__ = ("uuid", "algorithm")
    UUID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    algorithm: str
    def __init__(self, uuid: _Optional[str] = ..., algorithm: _Optional[str] = ...) -> None: ...

class GetBlobChecksumResponse(_message.Message):
    __slots__ = ("checksum",)
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    checksum: str
    def __init__(self, checksum: _Optional[str] = ...) -> None: ...
