from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArtifactType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_TYPE_UNSPECIFIED: _ClassVar[ArtifactType]
    ARTIFACT_TYPE_IMAGE: _ClassVar[ArtifactType]
    ARTIFACT_TYPE_SNAPSHOT: _ClassVar[ArtifactType]
    ARTIFACT_TYPE_LABEL: _ClassVar[ArtifactType]
    ARTIFACT_TYPE_OTHER: _ClassVar[ArtifactType]

class ArtifactState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_STATE_UNSPECIFIED: _ClassVar[ArtifactState]
    ARTIFACT_STATE_INITIAL: _ClassVar[ArtifactState]
    ARTIFACT_STATE_CREATED: _ClassVar[ArtifactState]
    ARTIFACT_STATE_ERROR: _ClassVar[ArtifactState]
    ARTIFACT_STATE_DELETED: _ClassVar[ArtifactState]

class BlobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BLOB_STATE_UNSPECIFIED: _ClassVar[BlobState]
    BLOB_STATE_INITIAL: _ClassVar[BlobState]
    BLOB_STATE_CREATED: _ClassVar[BlobState]
    BLOB_STATE_ERROR: _ClassVar[BlobState]
    BLOB_STATE_DELETED: _ClassVar[BlobState]
ARTIFACT_TYPE_UNSPECIFIED: ArtifactType
ARTIFACT_TYPE_IMAGE: ArtifactType
ARTIFACT_TYPE_SNAPSHOT: ArtifactType
ARTIFACT_TYPE_LABEL: ArtifactType
ARTIFACT_TYPE_OTHER: ArtifactType
ARTIFACT_STATE_UNSPECIFIED: ArtifactState
ARTIFACT_STATE_INITIAL: ArtifactState
ARTIFACT_STATE_CREATED: ArtifactState
ARTIFACT_STATE_ERROR: ArtifactState
ARTIFACT_STATE_DELETED: ArtifactState
BLOB_STATE_UNSPECIFIED: BlobState
BLOB_STATE_INITIAL: BlobState
BLOB_STATE_CREATED: BlobState
BLOB_STATE_ERROR: BlobState
BLOB_STATE_DELETED: BlobState

class ArtifactBlob(_message.Message):
    __slots__ = ("uuid", "size", "reference_count", "depends_on", "instances")
    UUID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    size: int
    reference_count: int
    depends_on: str
    instances: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, uuid: _Optional[str] = ..., size: _Optional[int] = ..., reference_count: _Optional[int] = ..., depends_on: _Optional[str] = ..., instances: _Optional[_Iterable[str]] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("uuid", "state", "metadata", "version", "artifact_type", "source_url", "max_versions", "namespace", "shared", "index", "blob_uuid", "blobs", "name", "error_message")
    class BlobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: ArtifactBlob
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[ArtifactBlob, _Mapping]] = ...) -> None: ...
    UUID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    MAX_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    state: ArtifactState
    metadata: _struct_pb2.Struct
    version: int
    artifact_type: ArtifactType
    source_url: str
    max_versions: int
    namespace: str
    shared: bool
    index: int
    blob_uuid: str
    blobs: _containers.MessageMap[int, ArtifactBlob]
    name: str
    error_message: str
    def __init__(self, uuid: _Optional[str] = ..., state: _Optional[_Union[ArtifactState, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., version: _Optional[int] = ..., artifact_type: _Optional[_Union[ArtifactType, str]] = ..., source_url: _Optional[str] = ..., max_versions: _Optional[int] = ..., namespace: _Optional[str] = ..., shared: _Optional[bool] = ..., index: _Optional[int] = ..., blob_uuid: _Optional[str] = ..., blobs: _Optional[_Mapping[int, ArtifactBlob]] = ..., name: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class Blob(_message.Message):
    __slots__ = ("uuid", "state", "metadata", "version", "size", "modified", "fetched_at", "depends_on", "transcodes", "locations", "reference_count", "sha512", "last_used", "instances", "format", "index")
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
    INDEX_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    state: BlobState
    metadata: _struct_pb2.Struct
    version: int
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
    index: int
    def __init__(self, uuid: _Optional[str] = ..., state: _Optional[_Union[BlobState, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., version: _Optional[int] = ..., size: _Optional[int] = ..., modified: _Optional[float] = ..., fetched_at: _Optional[float] = ..., depends_on: _Optional[str] = ..., transcodes: _Optional[_Mapping[str, str]] = ..., locations: _Optional[_Iterable[str]] = ..., reference_count: _Optional[int] = ..., sha512: _Optional[str] = ..., last_used: _Optional[float] = ..., instances: _Optional[_Iterable[str]] = ..., format: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...
