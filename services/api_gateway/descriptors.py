"""Fetch the upstream's file descriptors through gRPC server reflection (v1alpha).

At start-up the gateway asks the upstream for its service names and, for each,
the file that defines it (the reflection service answers with the file and
its dependencies). The files go into a fresh DescriptorPool, in dependency
order, so the gateway never needs the upstream's generated code: an RPC added
upstream is routed after a gateway restart.

The pool drops `source_code_info`, so the proto comments (which the sfmesh
upstream serves) are read from the raw files first, into a map from full name
to leading comment that feeds the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.api_gateway.types import ServiceDescriptor

log = logging.getLogger(__name__)

_REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


class ReflectionError(RuntimeError):
    """The upstream answered reflection with an error or an inconsistent file set."""


@dataclass(frozen=True)
class UpstreamDescriptors:
    """What the upstream serves: its descriptor pool and its services."""

    pool: descriptor_pool.DescriptorPool
    services: list[ServiceDescriptor]
    comments: dict[str, str] = field(default_factory=dict)
    """Leading comments by full name (see `comment_map`); empty without source info."""


async def fetch_descriptors(channel: grpc.aio.Channel, *, deadline: float) -> UpstreamDescriptors:
    """One reflection exchange; raises grpc.aio.AioRpcError or ReflectionError."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(timeout=deadline)
    try:
        listing = await _ask(call, reflection_pb2.ServerReflectionRequest(list_services=""))
        names = [s.name for s in listing.list_services_response.service if s.name != _REFLECTION]
        files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        for name in names:
            request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=name)
            _collect(await _ask(call, request), files)
        missing = _missing_dependencies(files)
        while missing:
            for filename in missing:
                request = reflection_pb2.ServerReflectionRequest(file_by_filename=filename)
                _collect(await _ask(call, request), files)
            missing = _missing_dependencies(files)
        await call.done_writing()
    finally:
        call.cancel()
    pool = build_pool(files.values())
    services = [pool.FindServiceByName(n) for n in names]
    return UpstreamDescriptors(pool, services, comment_map(files.values()))


async def load_descriptors(
    channel: grpc.aio.Channel, *, stop: asyncio.Event, deadline: float = 5.0
) -> UpstreamDescriptors | None:
    """Retry `fetch_descriptors` until the upstream answers; None if `stop` is set first."""
    delay = 0.1
    attempt = 0
    while not stop.is_set():
        attempt += 1
        try:
            return await fetch_descriptors(channel, deadline=deadline)
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            detail = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "timeout"
            if attempt == 1 or attempt % 20 == 0:
                log.warning("upstream reflection not answering yet (%s); retrying", detail)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):  # not wait_for: it can swallow a cancel
                await stop.wait()
        delay = min(delay * 2, 2.0)
    return None


async def _ask(
    call: grpc.aio.StreamStreamCall, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    await call.write(request)
    response = await call.read()
    if response is grpc.aio.EOF:
        raise ReflectionError("reflection stream ended early")
    assert isinstance(response, reflection_pb2.ServerReflectionResponse)  # for mypy only
    if response.HasField("error_response"):
        error = response.error_response
        raise ReflectionError(f"reflection error {error.error_code}: {error.error_message}")
    return response


def _collect(
    response: reflection_pb2.ServerReflectionResponse,
    files: dict[str, descriptor_pb2.FileDescriptorProto],
) -> None:
    for raw in response.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        files.setdefault(proto.name, proto)


def _missing_dependencies(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[str]:
    wanted = {dep for proto in files.values() for dep in proto.dependency}
    return sorted(wanted - files.keys())


def build_pool(
    files: Iterable[descriptor_pb2.FileDescriptorProto],
) -> descriptor_pool.DescriptorPool:
    """A new pool holding `files`, each added after its dependencies."""
    by_name = {p.name: p for p in files}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name in added:
            return
        if name in chain:
            raise ReflectionError(f"import cycle through {name}")
        proto = by_name.get(name)
        if proto is None:
            raise ReflectionError(f"upstream did not serve {name}")
        for dep in proto.dependency:
            add(dep, (*chain, name))
        pool.Add(proto)
        added.add(name)

    for name in sorted(by_name):
        add(name, ())
    return pool


# Field numbers of descriptor.proto used in source_code_info paths.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


def comment_map(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> dict[str, str]:
    """Leading comments of messages, fields, enums, enum values, services and methods. Pure.

    Keys are full names ("sfmesh.v1.Instance.state", "sfmesh.v1.InstanceService.GetInstance");
    an enum value is keyed under its enum ("sfmesh.v1.InstanceState.INSTANCE_STATE_CREATED").
    Each comment is stripped line by line; uncommented elements are left out.
    """
    found: dict[str, str] = {}
    for proto in files:
        texts = {
            tuple(loc.path): loc.leading_comments
            for loc in proto.source_code_info.location
            if loc.leading_comments.strip()
        }
        if not texts:
            continue
        for name, path in _elements(proto):
            if path in texts:
                found[name] = "\n".join(line.strip() for line in texts[path].strip().splitlines())
    return found


_Located = Iterator[tuple[str, tuple[int, ...]]]


def _elements(proto: descriptor_pb2.FileDescriptorProto) -> _Located:
    """(full name, source_code_info path) of every commentable element of a file."""
    package = f"{proto.package}." if proto.package else ""
    yield from _messages(package, proto.message_type, (_FILE_MESSAGE,))
    yield from _enums(package, proto.enum_type, (_FILE_ENUM,))
    for i, service in enumerate(proto.service):
        name = package + service.name
        yield name, (_FILE_SERVICE, i)
        for j, method in enumerate(service.method):
            yield f"{name}.{method.name}", (_FILE_SERVICE, i, _SERVICE_METHOD, j)


def _messages(
    prefix: str, items: Iterable[descriptor_pb2.DescriptorProto], path: tuple[int, ...]
) -> _Located:
    for i, message in enumerate(items):
        name, here = prefix + message.name, (*path, i)
        yield name, here
        for j, fd in enumerate(message.field):
            yield f"{name}.{fd.name}", (*here, _MESSAGE_FIELD, j)
        yield from _messages(f"{name}.", message.nested_type, (*here, _MESSAGE_NESTED))
        yield from _enums(f"{name}.", message.enum_type, (*here, _MESSAGE_ENUM))


def _enums(
    prefix: str, items: Iterable[descriptor_pb2.EnumDescriptorProto], path: tuple[int, ...]
) -> _Located:
    for i, enum in enumerate(items):
        name, here = prefix + enum.name, (*path, i)
        yield name, here
        for j, value in enumerate(enum.value):
            yield f"{name}.{value.name}", (*here, _ENUM_VALUE, j)
