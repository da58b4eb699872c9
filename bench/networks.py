"""Address reservations under contention, in one run: 200 concurrent REST
creates, each with one NIC on the same /24 and placed among simulated nodes,
must end with 200 distinct addresses and MACs, none lost; prints
reservations/s."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.gateway import Rest
from bench.harness import quiet_mesh
from bench.simulated_nodes import SimulatedNodes
from devmesh.mesh import Mesh

CREATES = 200
CLIENTS = 32


def run(mesh: Mesh) -> None:
    """Measure on a running mesh and print the figures."""
    token = Rest.token(mesh)
    rest = Rest(mesh.ports.gateway, token)
    network = json.loads(rest.call("POST", "/networks", {"netblock": "10.77.0.0/24"}))
    local = threading.local()  # one keep-alive connection per client thread
    spec = {
        "cpus": 1,
        "memory": 128,
        "disk": [{"size": 1}],
        "network": [{"network_uuid": network["uuid"]}],
    }

    def create(index: int) -> tuple[str, str]:
        body = {"name": f"r{index}", **spec}
        if not hasattr(local, "rest"):
            local.rest = Rest(mesh.ports.gateway, token)
        nic = json.loads(local.rest.call("POST", "/instances", body))["interfaces"][0]
        return str(nic["ipv4"]), str(nic["macaddr"])

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        made = list(pool.map(create, range(CREATES)))
    seconds = time.perf_counter() - started
    given = [address for address, _ in made]
    macs = {mac for _, mac in made}
    held = json.loads(rest.call("GET", f"/networks/{network['uuid']}/addresses"))
    by_instances = sorted(a["address"] for a in held if a["type"] == "instance")
    duplicates = len(given) - len(set(given))
    lost = sorted(set(given) ^ set(by_instances))
    print("address reservations (REST creates with one NIC on one /24)")
    rate = CREATES / seconds
    print(f"  {CREATES} concurrent creates, {CLIENTS} clients: {rate:,.0f} reservations/s")
    print(f"  duplicates: {duplicates}   lost or stray: {len(lost)}   (both must be 0)")
    print(f"  duplicate MACs: {CREATES - len(macs)}   (must be 0)")


def main() -> None:
    """Start a mesh on free ports and measure."""
    with quiet_mesh() as mesh, SimulatedNodes(mesh, 4, cpus=256):
        run(mesh)
