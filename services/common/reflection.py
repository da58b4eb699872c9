"""Server reflection that keeps the contracts' comments.

Generated `_pb2` modules drop source comments, and grpcio-reflection rebuilds
file descriptors from them. `make gen` also writes `sfmesh/v1/descriptors.binpb`
(a FileDescriptorSet with source info); this servicer answers with those files
where it has them, so `grpcurl describe` shows every comment of the protos.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

SERVICE_NAME = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name


@functools.cache
def commented_files() -> dict[str, bytes]:
    """Serialized FileDescriptorProtos with comments, by file name."""
    data = resources.files("sfmesh.v1").joinpath("descriptors.binpb").read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    return {file.name: file.SerializeToString() for file in files.file if file.source_code_info}


def _serialized(descriptor: FileDescriptor) -> bytes:
    commented = commented_files().get(descriptor.name)
    if commented is not None:
        return commented
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)
    return proto.SerializeToString()


def _with_dependencies(descriptor: FileDescriptor) -> list[FileDescriptor]:
    seen: dict[str, FileDescriptor] = {}
    pending = [descriptor]
    while pending:
        current = pending.pop()
        if current.name not in seen:
            seen[current.name] = current
            pending.extend(current.dependencies)
    return list(seen.values())


class CommentedReflectionServicer(ReflectionServicer):  # type: ignore[misc]
    """grpcio-reflection's servicer, answering files with their comments."""

    def _answer(self, request: Any, find: Any) -> reflection_pb2.ServerReflectionResponse:
        try:
            descriptor = find()
        except KeyError:
            return reflection_pb2.ServerReflectionResponse(
                error_response=reflection_pb2.ErrorResponse(
                    error_code=grpc.StatusCode.NOT_FOUND.value[0], error_message="not found"
                ),
                original_request=request,
            )
        files = [_serialized(d) for d in _with_dependencies(descriptor)]
        return reflection_pb2.ServerReflectionResponse(
            file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                file_descriptor_proto=files
            ),
            original_request=request,
        )

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        return self._answer(request, lambda: self._pool.FindFileByName(filename))

    def _file_containing_symbol(self, request: Any, name: str) -> Any:
        return self._answer(request, lambda: self._pool.FindFileContainingSymbol(name))

    def _file_containing_extension(self, request: Any, containing_type: str, number: int) -> Any:
        def find() -> FileDescriptor:
            message = self._pool.FindMessageTypeByName(containing_type)
            extension = self._pool.FindExtensionByNumber(message, number)
            return self._pool.FindFileContainingSymbol(extension.full_name)

        return self._answer(request, find)


def enable_reflection(service_names: list[str], server: grpc.aio.Server) -> None:
    """Serve reflection for `service_names` (plus reflection itself)."""
    servicer = CommentedReflectionServicer(
        [*service_names, SERVICE_NAME], pool=descriptor_pool.Default()
    )
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
