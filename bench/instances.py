"""The instance API at scale, in one run on one mesh whose scheduler places
every create onto simulated nodes (real report streams, no VMs):

- REST creates per second (16 concurrent clients), placement included;
- `GET /instances` through REST with 1,000 instances (target p50 <= 100 ms);
- the same with 10,000: the per-instance cost against 1,000's (target <= 1.2x:
  linear, no quadratic step);
- the api's resident memory with 10,000 instances (target < 250 MB).
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.gateway import Rest, paired_latencies
from bench.harness import quiet_mesh
from bench.simulated_nodes import SimulatedNodes
from devmesh.mesh import Mesh

CLIENTS = 16
NODES = 10
LIST_ROUNDS = 20
SETTLE_SECONDS = 5.0
SPEC = {"cpus": 1, "memory": 256, "disk": [{"size": 1, "base": "debian:11"}]}


def create(mesh: Mesh, token: str, count: int, offset: int) -> float:
    """Create `count` instances with CLIENTS concurrent clients; creates per second."""
    clients = [Rest(mesh.ports.gateway, token) for _ in range(CLIENTS)]

    def make(index: int) -> None:
        clients[index % CLIENTS].call("POST", "/instances", {"name": f"i{offset + index}", **SPEC})

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        for index in range(0, count, CLIENTS):
            list(pool.map(make, range(index, min(index + CLIENTS, count))))
    return count / (time.perf_counter() - started)


def list_p50(mesh: Mesh, token: str) -> float:
    """p50 milliseconds of `GET /instances` through REST, once the events of
    the creates have settled (the eventlog writing them would weigh on it)."""
    time.sleep(SETTLE_SECONDS)
    rest = Rest(mesh.ports.gateway, token)
    samples, _ = paired_latencies(lambda: rest.call("GET", "/instances"), lambda: None, LIST_ROUNDS)
    return statistics.median(samples)


def rss_mb(mesh: Mesh, service: str) -> float:
    """Resident memory of a service process, in MB."""
    process = mesh.children[service].process
    assert process is not None
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    """Start a mesh on free ports and measure."""
    with quiet_mesh() as mesh, SimulatedNodes(mesh, NODES, cpus=256):
        run(mesh)


def run(mesh: Mesh) -> None:
    """Measure on a running mesh and print the figures."""
    token = Rest.token(mesh)
    rate = create(mesh, token, 1000, 0)
    one_thousand = list_p50(mesh, token)
    create(mesh, token, 9000, 1000)
    ten_thousand = list_p50(mesh, token)
    growth = (ten_thousand / 10_000) / (one_thousand / 1000)
    print("instance API at scale (REST through the gateway)")
    print(
        f"  creates:                {rate:,.0f}/s with {CLIENTS} clients,"
        f" placed among {NODES} simulated nodes"
    )
    print(f"  GET /instances, 1,000:  p50 {one_thousand:.1f} ms (target <= 100 ms)")
    print(f"  GET /instances, 10,000: p50 {ten_thousand:.1f} ms")
    print(f"  cost per instance, 10,000 vs 1,000: {growth:.2f}x (target <= 1.2x)")
    print(f"  api RSS with 10,000:    {rss_mb(mesh, 'api'):.0f} MB (target < 250 MB)")
