from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PowerOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POWER_OPERATION_UNSPECIFIED: _ClassVar[PowerOperation]
    POWER_OPERATION_REBOOT_SOFT: _ClassVar[PowerOperation]
    POWER_OPERATION_REBOOT_HARD: _ClassVar[PowerOperation]
    POWER_OPERATION_POWER_OFF: _ClassVar[PowerOperation]
    POWER_OPERATION_POWER_ON: _ClassVar[PowerOperation]
    POWER_OPERATION_PAUSE: _ClassVar[PowerOperation]
    POWER_OPERATION_UNPAUSE: _ClassVar[PowerOperation]
POWER_OPERATION_UNSPECIFIED: PowerOperation
POWER_OPERATION_REBOOT_SOFT: PowerOperation
POWER_OPERATION_REBOOT_HARD: PowerOperation
POWER_OPERATION_POWER_OFF: PowerOperation
POWER_OPERATION_POWER_ON: PowerOperation
POWER_OPERATION_PAUSE: PowerOperation
POWER_OPERATION_UNPAUSE: PowerOperation

class AppendToUploadRequest(_message.Message):
    __slots__ = ("upload_uuid", "expected_size", "max_size", "data")
    UPLOAD_UUID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    upload_uuid: str
    expected_size: int
    max_size: int
    data: bytes
    def __init__(self, upload_uuid: _Optional[str] = ..., expected_size: _Optional[int] = ..., max_size: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadFileSize(_message.Message):
    __slots__ = ("size",)
    SIZE_FIELD_NUMBER: _ClassVar[int]
    size: int
    def __init__(self, size: _Optional[int] = ...) -> None: ...

class TruncateUploadFileRequest(_message.Message):
    __slots__ = ("upload_uuid", "size")
    UPLOAD_UUID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    upload_uuid: str
    size: int
    def __init__(self, upload_uuid: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class SealUploadRequest(_message.Message):
    __slots__ = ("upload_uuid", "blob_uuid")
    UPLOAD_UUID_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    upload_uuid: str
    blob_uuid: str
    def __init__(self, upload_uuid: _Optional[str] = ..., blob_uuid: _Optional[str] = ...) -> None: ...

class SealUploadResponse(_message.Message):
    __slots__ = ("size", "sha512", "format")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA512_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    size: int
    sha512: str
    format: str
    def __init__(self, size: _Optional[int] = ..., sha512: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class DiscardUploadRequest(_message.Message):
    __slots__ = ("upload_uuid",)
    UPLOAD_UUID_FIELD_NUMBER: _ClassVar[int]
    upload_uuid: str
    def __init__(self, upload_uuid: _Optional[str] = ...) -> None: ...

class DiscardUploadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReadBlobRequest(_message.Message):
    __slots__ = ("blob_uuid", "offset", "limit")
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    blob_uuid: str
    offset: int
    limit: int
    def __init__(self, blob_uuid: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ReadBlobResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class PingOnNetworkRequest(_message.Message):
    __slots__ = ("vxlan_id", "address")
    VXLAN_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    vxlan_id: int
    address: str
    def __init__(self, vxlan_id: _Optional[int] = ..., address: _Optional[str] = ...) -> None: ...

class PingOnNetworkResponse(_message.Message):
    __slots__ = ("exit_code", "stdout", "stderr")
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    exit_code: int
    stdout: str
    stderr: str
    def __init__(self, exit_code: _Optional[int] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ...) -> None: ...

class ChangePowerRequest(_message.Message):
    __slots__ = ("instance_uuid", "operation", "request_id")
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    operation: PowerOperation
    request_id: str
    def __init__(self, instance_uuid: _Optional[str] = ..., operation: _Optional[_Union[PowerOperation, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ChangePowerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReadConsoleRequest(_message.Message):
    __slots__ = ("instance_uuid", "length")
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    length: int
    def __init__(self, instance_uuid: _Optional[str] = ..., length: _Optional[int] = ...) -> None: ...

class ReadConsoleResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ClearConsoleRequest(_message.Message):
    __slots__ = ("instance_uuid",)
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    def __init__(self, instance_uuid: _Optional[str] = ...) -> None: ...

class ClearConsoleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SnapshotDiskRequest(_message.Message):
    __slots__ = ("instance_uuid", "device", "artifact_uuid", "blob_uuid", "request_id", "thin")
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_UUID_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    THIN_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    device: str
    artifact_uuid: str
    blob_uuid: str
    request_id: str
    thin: bool
    def __init__(self, instance_uuid: _Optional[str] = ..., device: _Optional[str] = ..., artifact_uuid: _Optional[str] = ..., blob_uuid: _Optional[str] = ..., request_id: _Optional[str] = ..., thin: _Optional[bool] = ...) -> None: ...

class SnapshotDiskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TakeScreenshotRequest(_message.Message):
    __slots__ = ("instance_uuid", "namespace", "expires_at", "request_id")
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    namespace: str
    expires_at: float
    request_id: str
    def __init__(self, instance_uuid: _Optional[str] = ..., namespace: _Optional[str] = ..., expires_at: _Optional[float] = ..., request_id: _Optional[str] = ...) -> None: ...

class TakeScreenshotResponse(_message.Message):
    __slots__ = ("blob_uuid", "size")
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    blob_uuid: str
    size: int
    def __init__(self, blob_uuid: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class PlugInterfaceRequest(_message.Message):
    __slots__ = ("instance_uuid", "interface_uuid", "request_id")
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_UUID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    interface_uuid: str
    request_id: str
    def __init__(self, instance_uuid: _Optional[str] = ..., interface_uuid: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class PlugInterfaceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RelayConsoleRequest(_message.Message):
    __slots__ = ("instance_uuid", "data")
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    data: bytes
    def __init__(self, instance_uuid: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class RelayConsoleResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class RunAgentOperationRequest(_message.Message):
    __slots__ = ("instance_uuid", "operation_uuid")
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_UUID_FIELD_NUMBER: _ClassVar[int]
    instance_uuid: str
    operation_uuid: str
    def __init__(self, instance_uuid: _Optional[str] = ..., operation_uuid: _Optional[str] = ...) -> None: ...

class RunAgentOperationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
