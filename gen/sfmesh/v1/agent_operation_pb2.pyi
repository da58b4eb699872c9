from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentOperationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_OPERATION_STATE_UNSPECIFIED: _ClassVar[AgentOperationState]
    AGENT_OPERATION_STATE_PREFLIGHT: _ClassVar[AgentOperationState]
    AGENT_OPERATION_STATE_QUEUED: _ClassVar[AgentOperationState]
    AGENT_OPERATION_STATE_EXECUTING: _ClassVar[AgentOperationState]
    AGENT_OPERATION_STATE_COMPLETE: _ClassVar[AgentOperationState]
    AGENT_OPERATION_STATE_ERROR: _ClassVar[AgentOperationState]
    AGENT_OPERATION_STATE_DELETED: _ClassVar[AgentOperationState]
AGENT_OPERATION_STATE_UNSPECIFIED: AgentOperationState
AGENT_OPERATION_STATE_PREFLIGHT: AgentOperationState
AGENT_OPERATION_STATE_QUEUED: AgentOperationState
AGENT_OPERATION_STATE_EXECUTING: AgentOperationState
AGENT_OPERATION_STATE_COMPLETE: AgentOperationState
AGENT_OPERATION_STATE_ERROR: AgentOperationState
AGENT_OPERATION_STATE_DELETED: AgentOperationState

class AgentOperation(_message.Message):
    __slots__ = ("uuid", "state", "version", "metadata", "namespace", "instance_uuid", "commands", "results", "error", "created", "deadline_seconds")
    UUID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    state: AgentOperationState
    version: int
    metadata: _struct_pb2.Struct
    namespace: str
    instance_uuid: str
    commands: _struct_pb2.ListValue
    results: _struct_pb2.Struct
    error: str
    created: float
    deadline_seconds: float
    def __init__(self, uuid: _Optional[str] = ..., state: _Optional[_Union[AgentOperationState, str]] = ..., version: _Optional[int] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., namespace: _Optional[str] = ..., instance_uuid: _Optional[str] = ..., commands: _Optional[_Union[_struct_pb2.ListValue, _Mapping]] = ..., results: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., created: _Optional[float] = ..., deadline_seconds: _Optional[float] = ...) -> None: ...
