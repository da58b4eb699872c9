"""What Prometheus metrics cost a request, in one run: the REST p50 of
`GET /instances/{uuid}` on a mesh whose services serve (and so record)
metrics, against the same on a mesh with none (`--metrics-listen ""`),
the calls alternating between the two so the machine's load weighs on both
alike. The gateway counts the route and the api the RPC on one side only.
Target: metrics add no more than 5 %.

Each mesh places its one instance on a simulated node (no VM): the record
is all a GET reads.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.gateway import LATENCY_ROUNDS, Rest, p50, paired_latencies
from bench.harness import quiet_mesh
from bench.simulated_nodes import SimulatedNodes
from devmesh.mesh import Mesh

SPEC = {
    "name": "bench-observability",
    "cpus": 1,
    "memory": 256,
    "disk": [{"size": 1, "base": "debian:11"}],
}
TARGET = 1.05


@contextlib.contextmanager
def mesh_with_instance(
    *, metrics: bool, settings: dict[str, str] | None = None
) -> Iterator[tuple[Mesh, Rest, str]]:
    """A mesh with or without metrics (and `settings`), a REST client and
    one instance's uuid (also bench/tracing.py's)."""
    with quiet_mesh(metrics=metrics, settings=settings) as mesh, SimulatedNodes(mesh, 1):
        rest = Rest(mesh.ports.gateway, Rest.token(mesh))
        uuid = json.loads(rest.call("POST", "/instances", SPEC))["uuid"]
        yield mesh, rest, uuid


def main() -> None:
    """Start both meshes on free ports, measure, print the p50s and the ratio."""
    with (
        mesh_with_instance(metrics=True) as (on, rest_on, uuid_on),
        mesh_with_instance(metrics=False) as (_, rest_off, uuid_off),
    ):
        with_metrics, without = paired_latencies(
            lambda: rest_on.call("GET", f"/instances/{uuid_on}"),
            lambda: rest_off.call("GET", f"/instances/{uuid_off}"),
            LATENCY_ROUNDS,
        )
        on_ms, off_ms = p50(with_metrics), p50(without)
        print("metrics benchmark (REST GET /instances/{uuid}, metrics on vs off)")
        print(
            f"  p50: on {on_ms:.3f} ms   off {off_ms:.3f} ms   "
            f"ratio {on_ms / off_ms:.3f}x (target <= {TARGET}x)"
        )
        print(f"  the 'on' gateway counted {counted(on):.0f} GETs of /instances/{{ref}}")


def counted(mesh: Mesh) -> float:
    """The `GET /instances/{ref}` requests a mesh's gateway has counted."""
    text = httpx.get(mesh.metrics_url("gateway"), timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sfmesh_http_requests_total"
        and sample.labels["route"] == "/instances/{ref}"
        and sample.labels["method"] == "GET"
    )
