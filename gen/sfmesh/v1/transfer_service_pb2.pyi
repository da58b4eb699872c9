from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import artifact_pb2 as _artifact_pb2
from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Upload(_message.Message):
    __slots__ = ("uuid", "state", "metadata", "version", "node", "created_at", "size")
    UUID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    state: str
    metadata: _struct_pb2.Struct
    version: int
    node: str
    created_at: float
    size: int
    def __init__(self, uuid: _Optional[str] = ..., state: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., version: _Optional[int] = ..., node: _Optional[str] = ..., created_at: _Optional[float] = ..., size: _Optional[int] = ...) -> None: ...

class CreateUploadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AppendUploadRequest(_message.Message):
    __slots__ = ("upload_uuid", "data")
    UPLOAD_UUID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    upload_uuid: str
    data: _httpbody_pb2.HttpBody
    def __init__(self, upload_uuid: _Optional[str] = ..., data: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class AppendUploadResponse(_message.Message):
    __slots__ = ("size",)
    SIZE_FIELD_NUMBER: _ClassVar[int]
    size: int
    def __init__(self, size: _Optional[int] = ...) -> None: ...

class TruncateUploadRequest(_message.Message):
    __slots__ = ("upload_uuid", "offset")
    UPLOAD_UUID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    upload_uuid: str
    offset: int
    def __init__(self, upload_uuid: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class ConvertUploadRequest(_message.Message):
    __slots__ = ("artifact_name", "upload_uuid", "blob_uuid", "source_url", "shared", "namespace", "artifact_type")
    ARTIFACT_NAME_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_UUID_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_TYPE_FIELD_NUMBER: _ClassVar[int]
    artifact_name: str
    upload_uuid: str
    blob_uuid: str
    source_url: str
    shared: bool
    namespace: str
    artifact_type: str
    def __init__(self, artifact_name: _Optional[str] = ..., upload_uuid: _Optional[str] = ..., blob_uuid: _Optional[str] = ..., source_url: _Optional[str] = ..., shared: _Optional[bool] = ..., namespace: _Optional[str] = ..., artifact_type: _Optional[str] = ...) -> None: ...

class GetBlobDataRequest(_message.Message):
    __slots__ = ("uuid", "offset", "limit", "range")
    UUID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    offset: int
    limit: int
    range: str
    def __init__(self, uuid: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., range: _Optional[str] = ...) -> None: ...
