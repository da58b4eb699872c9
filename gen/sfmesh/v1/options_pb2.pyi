from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class Access(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_UNSPECIFIED: _ClassVar[Access]
    ACCESS_USER: _ClassVar[Access]
    ACCESS_ANONYMOUS: _ClassVar[Access]
    ACCESS_INTERNAL: _ClassVar[Access]
ACCESS_UNSPECIFIED: Access
ACCESS_USER: Access
ACCESS_ANONYMOUS: Access
ACCESS_INTERNAL: Access
WIRE_FIELD_NUMBER: _ClassVar[int]
wire: _descriptor.FieldDescriptor
HTTP_HEADER_FIELD_NUMBER: _ClassVar[int]
http_header: _descriptor.FieldDescriptor
OMIT_WHEN_UNSET_FIELD_NUMBER: _ClassVar[int]
omit_when_unset: _descriptor.FieldDescriptor
ACCESS_FIELD_NUMBER: _ClassVar[int]
access: _descriptor.FieldDescriptor
CAPABILITY_FIELD_NUMBER: _ClassVar[int]
capability: _descriptor.FieldDescriptor
