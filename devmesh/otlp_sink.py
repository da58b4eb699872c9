"""An OTLP/gRPC trace collector that keeps what it is sent, in memory: what
a mesh started with `SFMESH_OTLP_ENDPOINT` exports its spans to in tests
and benchmarks (`services/common/tracing.py`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span: who sent it, its trace and its name."""

    service: str
    trace_id: str
    name: str


@dataclass
class OtlpSink(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span exported to it."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    port: int = 0
    """Where it listens on loopback, once started (`running_sink`)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        """Keep the spans of one export."""
        for resource in request.resource_spans:
            names = {a.key: a.value.string_value for a in resource.resource.attributes}
            received = [
                ReceivedSpan(names.get("service.name", ""), span.trace_id.hex(), span.name)
                for scope in resource.scope_spans
                for span in scope.spans
            ]
            with self._lock:
                self.spans += received
        return trace_service_pb2.ExportTraceServiceResponse()

    def of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans received of one trace."""
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def count(self) -> int:
        """How many spans it has received."""
        with self._lock:
            return len(self.spans)

    @property
    def endpoint(self) -> str:
        """What `SFMESH_OTLP_ENDPOINT` names to export here."""
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def running_sink() -> Iterator[OtlpSink]:
    """A sink serving on a free loopback port until the block ends."""
    sink = OtlpSink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    sink.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield sink
    finally:
        server.stop(None)
