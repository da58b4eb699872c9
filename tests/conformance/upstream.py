"""A recording upstream for the gateway conformance suite (test-only).

A real `grpc.aio` server with reflection and health that serves
`sfmesh.v1.InstanceService` through one generic handler per RPC. Every call is
recorded (the RPC name, the request message as proto-JSON with proto field
names, the invocation metadata) and answered from a script that the test sets
before each case:

    {"reply": {...}}                  the RPC's response, as proto-JSON
    {"stream": [{...}, ...]}          the messages of a server stream
    {"error": {"code": "NOT_FOUND", "message": "...", "details": [...]}}
                                      the failure, after the reply/stream part;
                                      with "details" it is a rich status
                                      (grpc-status-details-bin), without it a
                                      plain one; a detail is proto-JSON of a
                                      google.rpc type with its "@type", or
                                      {"@type": url, "@raw": base64} for a type
                                      nobody knows
    {"delay": 0.5}                    seconds to wait before answering / failing
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format, message_factory
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from sfmesh.v1 import instance_service_pb2

SERVICE = instance_service_pb2.DESCRIPTOR.services_by_name["InstanceService"]

# Rich-status details are parsed from the default pool; make sure every
# google.rpc detail type is registered there.
_DETAIL_TYPES = error_details_pb2


@dataclass
class Call:
    """One RPC the upstream received."""

    rpc: str
    request: dict[str, Any]
    metadata: dict[str, str]


@dataclass
class Recorder:
    """The script of the current case and the calls it produced."""

    script: dict[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def reset(self, script: dict[str, Any] | None) -> None:
        """Start a new case."""
        self.script = dict(script or {})
        self.calls.clear()

    def record(self, rpc: str, request: Message, context: grpc.aio.ServicerContext) -> None:
        """Remember one call."""
        metadata: dict[str, str] = {}
        for key, value in context.invocation_metadata() or ():
            metadata[key] = value if isinstance(value, str) else value.decode("latin-1")
        as_dict = json_format.MessageToDict(request, preserving_proto_field_name=True)
        self.calls.append(Call(rpc, as_dict, metadata))


def _detail(spec: dict[str, Any]) -> any_pb2.Any:
    if "@raw" in spec:
        return any_pb2.Any(type_url=spec["@type"], value=base64.b64decode(spec["@raw"]))
    packed = any_pb2.Any()
    json_format.ParseDict(spec, packed)
    return packed


async def _fail(context: grpc.aio.ServicerContext, error: dict[str, Any]) -> None:
    code_name = error["code"]
    message = error.get("message", "")
    if "details" not in error:
        await context.abort(grpc.StatusCode[code_name], message)
    status = status_pb2.Status(
        code=code_pb2.Code.Value(code_name),
        message=message,
        details=[_detail(d) for d in error["details"]],
    )
    await context.abort_with_status(rpc_status.to_status(status))


def _unary(
    recorder: Recorder, rpc: str, output: type[Message]
) -> Callable[[Message, grpc.aio.ServicerContext], Awaitable[Message]]:
    async def handle(request: Message, context: grpc.aio.ServicerContext) -> Message:
        recorder.record(rpc, request, context)
        script = recorder.script
        await asyncio.sleep(float(script.get("delay", 0)))
        if "error" in script:
            await _fail(context, script["error"])
        return json_format.ParseDict(script.get("reply", {}), output())

    return handle


def _streaming(
    recorder: Recorder, rpc: str, output: type[Message]
) -> Callable[[Message, grpc.aio.ServicerContext], AsyncIterator[Message]]:
    async def handle(request: Message, context: grpc.aio.ServicerContext) -> AsyncIterator[Message]:
        recorder.record(rpc, request, context)
        script = recorder.script
        for item in script.get("stream", []):
            yield json_format.ParseDict(item, output())
        await asyncio.sleep(float(script.get("delay", 0)))
        if "error" in script:
            await _fail(context, script["error"])

    return handle


def _generic_handler(recorder: Recorder) -> grpc.GenericRpcHandler:
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in SERVICE.methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        output_cls = message_factory.GetMessageClass(method.output_type)
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(recorder, method.name, output_cls),
                request_deserializer=request_cls.FromString,
                response_serializer=output_cls.SerializeToString,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(recorder, method.name, output_cls),
                request_deserializer=request_cls.FromString,
                response_serializer=output_cls.SerializeToString,
            )
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)


@dataclass
class Upstream:
    """A running recording upstream."""

    server: grpc.aio.Server
    address: str
    recorder: Recorder

    async def stop(self) -> None:
        """Stop at once."""
        await self.server.stop(0)


async def start_upstream() -> Upstream:
    """Start the recording upstream on a free loopback port."""
    recorder = Recorder()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_generic_handler(recorder),))
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (SERVICE.full_name, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return Upstream(server, f"127.0.0.1:{port}", recorder)
