"""What tracing costs a request, in one run: the REST p50 of
`GET /instances/{uuid}` on a mesh exporting spans to an OTLP sink
(`SFMESH_OTLP_ENDPOINT`) against the same on a mesh with no endpoint, the
calls alternating between the two so the machine's load weighs on both
alike (neither records metrics, so that only tracing differs).

With no endpoint, tracing installs nothing: no interceptor on any server
or channel, no span. What an untraced request still runs is a flag check
at each place that would trace (the gateway's request span and the
traceparent it would send, an event's trace id); that is timed here in
process and shown as a share of the untraced p50. Target: none
measurable."""

from __future__ import annotations

import time

from bench.gateway import LATENCY_ROUNDS, p50, paired_latencies
from bench.metrics import mesh_with_instance
from devmesh.otlp_sink import OtlpSink, running_sink
from services.common import tracing

CHECKS = 1_000_000


def untraced_seconds() -> float:
    """Seconds what an untraced request runs of tracing takes, per request."""
    assert not tracing.enabled()
    started = time.perf_counter()
    for _ in range(CHECKS):
        with tracing.span("HTTP GET", server=True):
            tracing.rename_span("GET /instances/{ref}")
            tracing.traceparent()
            tracing.trace_id()
    return (time.perf_counter() - started) / CHECKS


def main() -> None:
    """Start both meshes on free ports, measure, print the p50s and the ratio."""
    sink: OtlpSink
    with (
        running_sink() as sink,
        mesh_with_instance(metrics=False, settings={"SFMESH_OTLP_ENDPOINT": sink.endpoint}) as (
            _,
            rest_on,
            uuid_on,
        ),
        mesh_with_instance(metrics=False) as (_, rest_off, uuid_off),
    ):
        traced, untraced = paired_latencies(
            lambda: rest_on.call("GET", f"/instances/{uuid_on}"),
            lambda: rest_off.call("GET", f"/instances/{uuid_off}"),
            LATENCY_ROUNDS,
        )
        on_ms, off_ms = p50(traced), p50(untraced)
        off_cost_us = untraced_seconds() * 1e6
        time.sleep(1)  # the last batch of spans
        print("tracing benchmark (REST GET /instances/{uuid}, traced vs no endpoint)")
        print(
            f"  p50: traced {on_ms:.3f} ms   no endpoint {off_ms:.3f} ms   "
            f"ratio {on_ms / off_ms:.3f}x (the cost of tracing on)"
        )
        print(
            f"  no endpoint: {off_cost_us:.2f} us of tracing checks per request, "
            f"{off_cost_us / 1000 / off_ms * 100:.3f} % of its p50 (target: none measurable)"
        )
        print(f"  the sink received {sink.count()} spans from the traced mesh")
