"""What the REST gateway costs, against direct gRPC to the api, in one run.

- GetInstance: p50 through the gateway vs the same call with a gRPC stub.
- Throughput with 16 concurrent clients, each side the same shape: a thread
  per client, each with its own keep-alive `http.client` connection or its
  own channel and sync stub.
- GET /instances with 1,000 instances: the gateway's share of the time
  (REST p50 minus gRPC p50, i.e. transcoding, JSON and the extra hop).

The load generator runs on the same cores as the mesh, so only the ratios
mean much; both sides are measured back to back on the same mesh.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
from sfmesh.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    instance_service_pb2,
    instance_service_pb2_grpc,
)

from bench.harness import quiet_mesh
from bench.simulated_nodes import SimulatedNodes
from devmesh.mesh import Mesh

LATENCY_ROUNDS = 2000
CLIENTS = 16
THROUGHPUT_SECONDS = 5.0
LIST_SIZE = 1000
LIST_ROUNDS = 30

Call = Callable[[], object]


class Rest:
    """A keep-alive HTTP/1.1 connection to the gateway."""

    def __init__(self, port: int, token: str) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: object = None) -> bytes:
        payload = json.dumps(body) if body is not None else None
        self._conn.request(method, path, body=payload, headers=self._headers)
        response = self._conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return data

    @staticmethod
    def token(mesh: Mesh) -> str:
        """A system token from POST /auth."""
        conn = http.client.HTTPConnection("127.0.0.1", mesh.ports.gateway)
        body = json.dumps({"namespace": "system", "key": mesh.system_key})
        conn.request("POST", "/auth", body=body, headers={"Content-Type": "application/json"})
        token = json.loads(conn.getresponse().read())["access_token"]
        conn.close()
        return str(token)


class Grpc:
    """A channel and sync stub to the api."""

    def __init__(self, address: str, token: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self.stub = instance_service_pb2_grpc.InstanceServiceStub(self._channel)
        self.metadata = (("authorization", f"Bearer {token}"),)


def paired_latencies(first: Call, second: Call, rounds: int) -> tuple[list[float], list[float]]:
    """Milliseconds per call of each, over `rounds` rounds after a warm-up.

    The two calls alternate, and which goes first swaps every round, so a
    change in the machine's load weighs on both sides alike.
    """
    for _ in range(min(rounds, 50)):
        first()
        second()
    samples: tuple[list[float], list[float]] = ([], [])
    for index in range(rounds):
        order = ((0, first), (1, second)) if index % 2 == 0 else ((1, second), (0, first))
        for side, call in order:
            started = time.perf_counter()
            call()
            samples[side].append((time.perf_counter() - started) * 1000)
    return samples


def throughput(make_call: Callable[[], Call], clients: int, seconds: float) -> float:
    """Calls per second with `clients` threads, each with its own connection."""
    calls = [make_call() for _ in range(clients)]
    for call in calls:
        call()
    stop = threading.Event()
    counts = [0] * clients

    def worker(index: int) -> None:
        call = calls[index]
        while not stop.is_set():
            call()
            counts[index] += 1

    with ThreadPoolExecutor(clients) as pool:
        started = time.perf_counter()
        futures = [pool.submit(worker, i) for i in range(clients)]
        time.sleep(seconds)
        stop.set()
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - started
    return sum(counts) / elapsed


def p50(samples: list[float]) -> float:
    """The median."""
    return statistics.median(samples)


def main() -> None:
    """Start a mesh on free ports and measure."""
    with quiet_mesh() as mesh, SimulatedNodes(mesh, 1):  # creates need a node
        run(mesh)


def run(mesh: Mesh) -> None:
    """Measure on a running mesh and print both sides and the ratios."""
    channel = grpc.insecure_channel(mesh.address("api"))
    token = (
        auth_service_pb2_grpc.AuthServiceStub(channel)
        .CreateToken(auth_service_pb2.CreateTokenRequest(namespace="system", key=mesh.system_key))
        .access_token
    )
    rest = Rest(mesh.ports.gateway, token)
    direct = Grpc(mesh.address("api"), token)
    spec = {"cpus": 1, "memory": 256, "disk": [{"size": 1, "base": "debian:11"}]}
    uuid = json.loads(rest.call("POST", "/instances", {"name": "bench-0", **spec}))["uuid"]
    get_request = instance_service_pb2.GetInstanceRequest(ref=uuid)

    def grpc_get(client: Grpc = direct) -> object:
        return client.stub.GetInstance(get_request, metadata=client.metadata)

    def rest_get(client: Rest = rest) -> object:
        return client.call("GET", f"/instances/{uuid}")

    print("gateway benchmark (REST through the gateway vs direct gRPC to the api)")
    grpc_samples, rest_samples = paired_latencies(grpc_get, rest_get, LATENCY_ROUNDS)
    grpc_ms, rest_ms = p50(grpc_samples), p50(rest_samples)
    print(
        f"  GetInstance p50:       gRPC {grpc_ms:.2f} ms   REST {rest_ms:.2f} ms   "
        f"ratio {rest_ms / grpc_ms:.2f}x (target <= 1.5x)"
    )

    def grpc_client() -> Call:
        client = Grpc(mesh.address("api"), token)
        return lambda: grpc_get(client)

    def rest_client() -> Call:
        client = Rest(mesh.ports.gateway, token)
        return lambda: rest_get(client)

    grpc_rate = throughput(grpc_client, CLIENTS, THROUGHPUT_SECONDS)
    rest_rate = throughput(rest_client, CLIENTS, THROUGHPUT_SECONDS)
    print(
        f"  {CLIENTS} clients throughput: gRPC {grpc_rate:.0f}/s   REST {rest_rate:.0f}/s   "
        f"ratio {rest_rate / grpc_rate:.2f}x (target >= 0.6x)"
    )

    rest = Rest(mesh.ports.gateway, token)  # the first one idled through the throughput runs
    for index in range(1, LIST_SIZE):
        rest.call("POST", "/instances", {"name": f"bench-{index}", **spec})
    list_request = instance_service_pb2.ListInstancesRequest()

    def grpc_list() -> object:
        return direct.stub.ListInstances(list_request, metadata=direct.metadata)

    grpc_lists, rest_lists = paired_latencies(
        grpc_list, lambda: rest.call("GET", "/instances"), LIST_ROUNDS
    )
    grpc_list_ms, rest_list_ms = p50(grpc_lists), p50(rest_lists)
    print(
        f"  GET /instances ({LIST_SIZE}):  gRPC {grpc_list_ms:.1f} ms   "
        f"REST {rest_list_ms:.1f} ms   gateway share {rest_list_ms - grpc_list_ms:.1f} ms "
        "(target <= 30 ms)"
    )
    channel.close()
