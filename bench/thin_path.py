"""The cost of the REST front door: GET /instances/{uuid} through the gateway
against the same read as a direct gRPC call, measured in one run on one mesh.

Prints p50 and p95 of each and their ratio; the direct call is the baseline,
so the ratio holds on a noisy shared machine where absolute times do not.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
from sfmesh.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    instance_service_pb2,
    instance_service_pb2_grpc,
)

from devmesh.mesh import Mesh, Ports

ROUNDS = 500
WARMUP = 50


def timed(call: Callable[[], object], rounds: int) -> list[float]:
    """Milliseconds per call, over `rounds` sequential calls after a warm-up."""
    for _ in range(WARMUP):
        call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def main() -> None:
    """Start a mesh, create one instance, and compare the two ways to read it."""
    with tempfile.TemporaryDirectory() as state, open(os.devnull, "w") as sink:
        mesh = Mesh(state_dir=Path(state), ports=Ports.free(), sink=sink)
        mesh.start()
        try:
            run(mesh)
        finally:
            mesh.stop()


def run(mesh: Mesh) -> None:
    """Measure on a running mesh and print the figures."""
    channel = grpc.insecure_channel(mesh.address("api"))
    token = (
        auth_service_pb2_grpc.AuthServiceStub(channel)
        .CreateToken(auth_service_pb2.CreateTokenRequest(namespace="system", key=mesh.system_key))
        .access_token
    )
    metadata = [("authorization", f"Bearer {token}")]
    stub = instance_service_pb2_grpc.InstanceServiceStub(channel)
    rest = httpx.Client(base_url=mesh.gateway_url, headers={"Authorization": f"Bearer {token}"})
    created = rest.post(
        "/instances", json={"name": "bench", "cpus": 1, "memory": 256, "disk": [{"size": 1}]}
    )
    uuid = created.json()["uuid"]
    request = instance_service_pb2.GetInstanceRequest(ref=uuid)

    grpc_ms = timed(lambda: stub.GetInstance(request, metadata=metadata), ROUNDS)
    rest_ms = timed(lambda: rest.get(f"/instances/{uuid}").raise_for_status(), ROUNDS)
    grpc_p50, grpc_p95 = summary(grpc_ms)
    rest_p50, rest_p95 = summary(rest_ms)
    print(f"thin path: GET one instance, {ROUNDS} sequential calls each", file=sys.stdout)
    print(f"  direct gRPC (baseline): p50 {grpc_p50:.2f} ms  p95 {grpc_p95:.2f} ms")
    print(f"  REST via gateway:       p50 {rest_p50:.2f} ms  p95 {rest_p95:.2f} ms")
    print(
        f"  ratio REST/gRPC:        p50 {rest_p50 / grpc_p50:.2f}x  p95 {rest_p95 / grpc_p95:.2f}x"
    )
    rest.close()
    channel.close()
