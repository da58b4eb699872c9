"""Every service's Prometheus endpoint, scraped and parsed with
prometheus_client's parser: the process, gRPC and REST series are there,
a create, a refused create, a power operation and a delete through REST
move the counters of each service they cross, and no label names an
object (no uuid among the label values)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devmesh.mesh import Mesh

DISK = {"size": 1, "base": "debian:11"}
BOOT = {"cpus": 1, "memory": 128, "disk": [DISK]}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(mesh: Mesh, service: str) -> Samples:
    """Every sample of a service's endpoint, by name and labels."""
    reply = httpx.get(mesh.metrics_url(service), timeout=10)
    assert reply.status_code == 200, reply.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def rpc(samples: Samples, method: str, code: str = "OK") -> float:
    return value(samples, "sfmesh_grpc_requests_total", method=f"/sfmesh.v1.{method}", code=code)


def route(samples: Samples, pattern: str, method: str, code: str = "200") -> float:
    return value(samples, "sfmesh_http_requests_total", route=pattern, method=method, code=code)


def wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {check}"
        time.sleep(0.2)
    return found


def state(rest: httpx.Client, uuid: str) -> str:
    return str(rest.get(f"/instances/{uuid}").json()["state"])


def test_every_service_serves_process_and_request_series(mesh: Mesh) -> None:
    for service in mesh.services:
        samples = scrape(mesh, service)
        names = {name for name, _ in samples}
        assert "process_cpu_seconds_total" in names, service
        if service == "gateway":
            assert route(samples, "/healthz", "GET") >= 1  # the launcher asked it
        else:  # the launcher asked each one's health before starting the next
            health = value(
                samples,
                "sfmesh_grpc_requests_total",
                method="/grpc.health.v1.Health/Check",
                code="OK",
            )
            assert health >= 1, service
            assert ("sfmesh_grpc_request_duration_seconds_count", frozenset(
                {("method", "/grpc.health.v1.Health/Check")}
            )) in samples, service  # fmt: skip


def test_rest_calls_move_the_counters_of_the_services_they_cross(
    mesh: Mesh, rest: httpx.Client
) -> None:
    before = {service: scrape(mesh, service) for service in mesh.services}
    refused = rest.post("/instances", json={**BOOT, "name": "metrics-bad", "cpus": 0})
    assert refused.status_code == 400, refused.text
    made = rest.post("/instances", json={**BOOT, "name": "metrics-vm"})
    assert made.status_code == 200, made.text
    uuid = made.json()["uuid"]
    wait_for(lambda: state(rest, uuid) in ("created", "error"))
    assert state(rest, uuid) == "created"
    assert rest.post(f"/instances/{uuid}/poweroff").status_code == 200
    assert rest.get(f"/instances/{uuid}/events").status_code == 200
    assert rest.delete(f"/instances/{uuid}").status_code == 200
    wait_for(lambda: state(rest, uuid) == "deleted")
    after = {service: scrape(mesh, service) for service in mesh.services}

    def moved(service: str, count: Callable[[Samples], float]) -> float:
        return count(after[service]) - count(before[service])

    assert moved("gateway", lambda s: route(s, "/instances", "POST")) == 1
    assert moved("gateway", lambda s: route(s, "/instances", "POST", "400")) == 1
    assert moved("gateway", lambda s: route(s, "/instances/{ref}/poweroff", "POST")) == 1
    assert moved("gateway", lambda s: route(s, "/instances/{ref}", "DELETE")) == 1
    assert moved("gateway", lambda s: route(s, "/instances/{ref}", "GET")) >= 3
    duration = "sfmesh_http_request_duration_seconds_count"
    assert moved("gateway", lambda s: value(s, duration, route="/instances", method="POST")) == 2
    api = "InstanceService/"
    assert moved("api", lambda s: rpc(s, api + "CreateInstance")) == 1
    assert moved("api", lambda s: rpc(s, api + "CreateInstance", "INVALID_ARGUMENT")) == 1
    assert moved("api", lambda s: rpc(s, api + "PowerOff")) == 1
    assert moved("api", lambda s: rpc(s, api + "DeleteInstance")) == 1
    assert moved("scheduler", lambda s: rpc(s, "SchedulerService/PlaceInstance")) == 1
    assert moved("node_agent", lambda s: rpc(s, "NodeAgentService/ChangePower")) == 1
    assert moved("eventlog", lambda s: sum(
        v for (name, labels), v in s.items()
        if name == "sfmesh_grpc_requests_total" and ("code", "OK") in labels
        and "Health" not in dict(labels)["method"]
    )) >= 1  # fmt: skip

    for service, samples in after.items():
        named = [(name, dict(labels)) for name, labels in samples if name.startswith("sfmesh_")]
        for name, labels in named:
            assert not any(UUID.search(v) for v in labels.values()), (service, name, labels)
    unmatched = httpx.get(f"{mesh.gateway_url}/no-such/{uuid}")
    assert unmatched.status_code == 404
    assert wait_for(lambda: route(scrape(mesh, "gateway"), "unmatched", "GET", "404"))
