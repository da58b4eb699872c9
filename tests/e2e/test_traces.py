"""A create is one trace: a mesh told to export spans to an OTLP receiver
in this test (`SFMESH_OTLP_ENDPOINT`) sends spans from the gateway, the api,
the scheduler and the node agent under the trace of the REST request, and
the instance's events carry that trace's id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from devmesh.mesh import Mesh
from devmesh.otlp_sink import OtlpSink, running_sink
from tests.e2e.test_vms import created, wait_for
from tests.meshes import rest_client, system_token, throwaway_mesh

NODE = f"e2e-trace-{uuid.uuid4().hex[:6]}"
"""This mesh's node name: its domains are `sfmesh-<NODE>-<uuid>`."""


@pytest.fixture(scope="module")
def sink() -> Iterator[OtlpSink]:
    with running_sink() as running:
        yield running


@pytest.fixture(scope="module")
def traced_mesh(boot_sector_url: str, sink: OtlpSink) -> Iterator[Mesh]:
    settings = {
        "SFMESH_IMAGE_SHORTHANDS": f"debian:11={boot_sector_url}",
        "SFMESH_OTLP_ENDPOINT": sink.endpoint,
    }
    with throwaway_mesh("e2e-trace", NODE, settings) as running:
        yield running


def test_a_mesh_without_an_endpoint_exports_nothing(
    mesh: Mesh, rest: httpx.Client, sink: OtlpSink
) -> None:
    """Runs first, before the traced mesh starts, so that nothing else can
    have sent the sink a span."""
    instance = created(rest, "untraced")
    events = rest.get(f"/instances/{instance['uuid']}/events").json()
    rest.delete(f"/instances/{instance['uuid']}")
    assert not any("trace-id" in (event["extra"] or {}) for event in events)
    assert sink.count() == 0


def test_a_create_is_one_trace_from_the_gateway_to_the_boot(
    traced_mesh: Mesh, sink: OtlpSink
) -> None:
    kept = sink
    with rest_client(traced_mesh, system_token(traced_mesh)) as rest:
        instance = created(rest, "traced")
        assert instance["state"] == "created", instance.get("error_message")
        events = rest.get(f"/instances/{instance['uuid']}/events").json()
        rest.delete(f"/instances/{instance['uuid']}")
    create_events = [event for event in events if (event["extra"] or {}).get("trace-id")]
    assert create_events, events
    trace = create_events[0]["extra"]["trace-id"]

    wanted = {
        ("sfmesh-gateway", "POST /instances"),
        ("sfmesh-api", "/sfmesh.v1.InstanceService/CreateInstance"),
        ("sfmesh-scheduler", "/sfmesh.v1.SchedulerService/PlaceInstance"),
        ("sfmesh-node_agent", "create instance"),
        ("sfmesh-node_agent", "boot"),
    }

    def whole() -> bool:
        return wanted <= {(span.service, span.name) for span in kept.of_trace(trace)}

    try:
        wait_for(whole, timeout=15)
    except AssertionError:
        seen = {(span.service, span.trace_id[:8], span.name) for span in kept.spans}
        raise AssertionError(f"trace {trace}: of {len(kept.spans)} spans, {sorted(seen)}") from None
    node_events = [event for event in events if event["fqdn"] and "created" in event["message"]]
    assert node_events, events
    assert all((event["extra"] or {}).get("trace-id") == trace for event in node_events), (
        node_events
    )
