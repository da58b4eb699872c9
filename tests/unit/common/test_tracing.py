"""services/common/tracing.py: off by default, and on, one trace across a
real gRPC hop on loopback and into an event's extra."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sfmesh.v1 import event_pb2

from services.common import tracing
from services.common.events import new_record
from services.common.transport import Transport


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("test", "", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown_tracing()


def test_off_installs_nothing_and_names_no_trace() -> None:
    assert not tracing.enabled()
    with tracing.span("ignored"):
        assert tracing.trace_id() == ""
        assert tracing.traceparent() == ""
    assert tracing.server_interceptors() == []
    assert tracing.channel_interceptors() == []
    assert "trace-id" not in new_record("fqdn", "node", "n", event_pb2.EVENT_TYPE_AUDIT, "m").extra


def test_a_span_continues_under_a_recorded_traceparent(spans: InMemorySpanExporter) -> None:
    with tracing.span("create"):
        parent = tracing.traceparent()
        trace = tracing.trace_id()
    with tracing.span("build", parent=parent):
        assert tracing.trace_id() == trace
    tracing.shutdown_tracing()
    build, create = sorted(spans.get_finished_spans(), key=lambda span: span.name)
    assert build.parent is not None
    assert build.parent.span_id == create.context.span_id
    assert len(trace) == 32


def test_events_carry_the_trace_id(spans: InMemorySpanExporter) -> None:
    with tracing.span("request"):
        record = new_record("fqdn", "instance", "u", event_pb2.EVENT_TYPE_AUDIT, "poweron")
        assert record.extra["trace-id"] == tracing.trace_id()


async def health_check_traced(spans: InMemorySpanExporter, *, traced: bool) -> tuple[str, Any]:
    """A health check from inside a span over a channel (`traced` or not) to
    a traced server on loopback: the caller's trace id and the server's span."""
    server = grpc.aio.server(interceptors=tracing.server_interceptors())
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with Transport().channel(f"127.0.0.1:{port}", traced=traced) as channel:
            with tracing.span("caller"):
                caller_trace = tracing.trace_id()
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    finally:
        await server.stop(None)
    tracing.shutdown_tracing()
    served = {span.name: span for span in spans.get_finished_spans()}
    check = served["/grpc.health.v1.Health/Check"]
    assert check.parent is None or check.parent.span_id == served["caller"].context.span_id
    return caller_trace, check


async def test_a_trace_crosses_a_grpc_hop(spans: InMemorySpanExporter) -> None:
    caller_trace, check = await health_check_traced(spans, traced=True)
    assert format(check.context.trace_id, "032x") == caller_trace
    assert check.parent is not None


async def test_channels_that_are_not_traced_carry_no_traceparent(
    spans: InMemorySpanExporter,
) -> None:
    caller_trace, check = await health_check_traced(spans, traced=False)
    assert format(check.context.trace_id, "032x") != caller_trace
    assert check.parent is None
