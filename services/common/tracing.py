"""Traces across the mesh (OpenTelemetry), off unless `--otlp-endpoint`
names a collector.

Off, nothing is installed: no server or channel interceptors, no spans;
`trace_id()` and `traceparent()` answer "" and `span()` does nothing, so a
request pays a flag check. On, each process exports its spans to the
collector over OTLP/gRPC in batches, and the W3C `traceparent` travels:
- in the metadata of every gRPC call (`TraceInjector` on every channel a
  `Transport` makes, `TracingInterceptor` on every server), so a request is
  one trace from the gateway through the api to the scheduler;
- in an instance's record from the api's create to the node agent that
  builds it (`create_traceparent`), which has no RPC between them;
- into events, whose `extra` carries `trace-id` beside `request-id`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.common.handlers import Behavior, wrap_handler
from services.common.settings import Setting

OTLP_ENDPOINT = Setting(
    "--otlp-endpoint",
    "",
    "the OTLP/gRPC collector spans are exported to, host:port; none: tracing off",
)
TRACEPARENT = "traceparent"
"""The W3C header, also the gRPC metadata key, that carries a span's context."""

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_NO_SPAN = contextlib.nullcontext()


def configure_tracing(service: str, endpoint: str, *, exporter: SpanExporter | None = None) -> None:
    """Turn tracing on for this process when `endpoint` is given (or a test
    passes its own `exporter`); otherwise leave it off. Call once, first."""
    global _provider, _tracer
    if not endpoint and exporter is None:
        return
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    _provider = TracerProvider(resource=Resource.create({"service.name": f"sfmesh-{service}"}))
    _provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    _tracer = _provider.get_tracer("sfmesh")


def shutdown_tracing() -> None:
    """Export what is buffered and stop; tracing is off afterwards."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    _provider = _tracer = None


def enabled() -> bool:
    """Whether this process traces."""
    return _tracer is not None


def trace_id() -> str:
    """The id of the trace being served, 32 hex digits; "" outside one."""
    if _tracer is None:
        return ""
    found = trace.get_current_span().get_span_context()
    return trace.format_trace_id(found.trace_id) if found.is_valid else ""


def traceparent() -> str:
    """The `traceparent` of the span being served; "" outside one."""
    if _tracer is None:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT, "")


def span(
    name: str, *, parent: str = "", server: bool = False
) -> contextlib.AbstractContextManager[object]:
    """A span around a `with` block, current inside it: under `parent` (a
    `traceparent`) when given, else under the span being served. Off, a
    shared no-op (nothing made per call)."""
    if _tracer is None:
        return _NO_SPAN
    kind = trace.SpanKind.SERVER if server else trace.SpanKind.INTERNAL
    under = _propagator.extract({TRACEPARENT: parent}) if parent else None
    return _tracer.start_as_current_span(name, context=under, kind=kind)


def rename_span(name: str) -> None:
    """Name the span being served (the gateway learns its route late)."""
    if _tracer is not None:
        trace.get_current_span().update_name(name)


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """What a gRPC server installs for tracing: nothing when off."""
    return [TracingInterceptor()] if _tracer is not None else []


def channel_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """What a gRPC channel installs for tracing: nothing when off."""
    return [TraceInjector()] if _tracer is not None else []


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """A server span per RPC, named by its method, under the caller's
    `traceparent` when the call carries one."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        parent = next(
            (str(value) for key, value in details.invocation_metadata or () if key == TRACEPARENT),
            "",
        )

        def wrapper(behavior: Behavior, streams: bool) -> Behavior:
            if streams:

                async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
                    with span(method, parent=parent, server=True):
                        async for reply in behavior(request, context):
                            yield reply

                return streaming

            async def unary(request: Any, context: Any) -> Any:
                with span(method, parent=parent, server=True):
                    return await behavior(request, context)

            return unary

        return wrap_handler(handler, wrapper)


class TraceInjector(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds the current span's `traceparent` to every call's metadata."""

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_carrying(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_carrying(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_carrying(details), requests)

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_carrying(details), requests)


def _carrying(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    parent = traceparent()
    if not parent:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add(TRACEPARENT, parent)
    return details._replace(metadata=metadata)
