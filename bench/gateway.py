"""What the REST gateway costs, against direct gRPC to the api, in one run.

- GetInstance: p50 through the gateway vs the same call with a gRPC stub.
- Throughput with 16 concurrent clients, each side the same shape: a thread
  per client, each with its own keep-alive `http.client` connection or its
  own channel and sync stub.
- Both again through the same gateway app under uvicorn (httptools, uvloop,
  its access log on like ours), a second process beside the mesh's gateway:
  what the gateway's own HTTP server gains or costs against a kept one.
- GET /instances with 1,000 instances: the gateway's share of the time
  (REST p50 minus gRPC p50, i.e. transcoding, JSON and the extra hop).

The load generator runs on the same cores as the mesh, so only the ratios
mean much; both sides are measured back to back on the same mesh.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import statistics
import sys
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

from bench.harness import quiet_mesh, trusting
from bench.simulated_nodes import SimulatedNodes
from devmesh.mesh import Mesh
from launcher.host import READY_TIMEOUT
from launcher.processes import Child, http_ok, wait_until
from services.api_gateway.app import GatewayApp
from services.api_gateway.config import GatewayConfig

LATENCY_ROUNDS = 2000
CLIENTS = 16
THROUGHPUT_SECONDS = 5.0
LIST_SIZE = 1000
LIST_ROUNDS = 30

Call = Callable[[], object]


class Rest:
    """A keep-alive HTTP/1.1 connection to the gateway at `host`, over
    HTTPS through `context` when given."""

    def __init__(
        self,
        port: int,
        token: str,
        *,
        context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self._conn = connection(host, port, context)
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
        """A system token from POST /auth (over HTTPS with a TLS mesh)."""
        conn = connection("127.0.0.1", mesh.ports.gateway, trusting(mesh))
        body = json.dumps({"namespace": "system", "key": mesh.system_key})
        conn.request("POST", "/auth", body=body, headers={"Content-Type": "application/json"})
        token = json.loads(conn.getresponse().read())["access_token"]
        conn.close()
        return str(token)


def connection(host: str, port: int, context: ssl.SSLContext | None) -> http.client.HTTPConnection:
    """An HTTP connection, or an HTTPS one through `context`."""
    if context is None:
        return http.client.HTTPConnection(host, port)
    return http.client.HTTPSConnection(host, port, context=context)


class Grpc:
    """A channel and sync stub to the api."""

    def __init__(self, address: str, token: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self.stub = instance_service_pb2_grpc.InstanceServiceStub(self._channel)
        self.metadata = (("authorization", f"Bearer {token}"),)


def uvicorn_gateway() -> GatewayApp:
    """The gateway app for `uvicorn --factory`, in front of `SFMESH_API_ADDRESS`."""
    return GatewayApp(GatewayConfig(api_address=os.environ["SFMESH_API_ADDRESS"]))


def start_uvicorn_gateway(mesh: Mesh) -> tuple[Child, int]:
    """A second gateway, the same app under uvicorn, beside the mesh's; and its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    argv = [sys.executable, "-m", "uvicorn", "bench.gateway:uvicorn_gateway", "--factory"]
    argv += ["--port", str(port), "--loop", "uvloop", "--http", "httptools", "--lifespan", "on"]
    env = {**os.environ, "SFMESH_API_ADDRESS": mesh.address("api")}
    child = Child("uvicorn", argv, env=env, sink=None)
    wait_until(http_ok(f"http://127.0.0.1:{port}/healthz"), child=child, timeout=READY_TIMEOUT)
    return child, port


def paired_latencies(first: Call, second: Call, rounds: int) -> tuple[list[float], list[float]]:
    """`rotated_latencies` of two calls."""
    first_samples, second_samples = rotated_latencies([first, second], rounds)
    return first_samples, second_samples


def rotated_latencies(calls: list[Call], rounds: int) -> list[list[float]]:
    """Milliseconds per call of each, over `rounds` rounds after a warm-up.

    The calls alternate, and which goes first rotates every round, so a
    change in the machine's load weighs on every side alike.
    """
    for _ in range(min(rounds, 50)):
        for call in calls:
            call()
    samples: list[list[float]] = [[] for _ in calls]
    for index in range(rounds):
        for offset in range(len(calls)):
            side = (index + offset) % len(calls)
            started = time.perf_counter()
            calls[side]()
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
        uvicorn, port = start_uvicorn_gateway(mesh)
        try:
            run(mesh, port)
        finally:
            uvicorn.stop()


def run(mesh: Mesh, uvicorn_port: int) -> None:
    """Measure on a running mesh and print each side and the ratios."""
    channel = grpc.insecure_channel(mesh.address("api"))
    token = (
        auth_service_pb2_grpc.AuthServiceStub(channel)
        .CreateToken(auth_service_pb2.CreateTokenRequest(namespace="system", key=mesh.system_key))
        .access_token
    )
    rest = Rest(mesh.ports.gateway, token)
    kept = Rest(uvicorn_port, token)
    direct = Grpc(mesh.address("api"), token)
    spec = {"cpus": 1, "memory": 256, "disk": [{"size": 1, "base": "debian:11"}]}
    uuid = json.loads(rest.call("POST", "/instances", {"name": "bench-0", **spec}))["uuid"]
    get_request = instance_service_pb2.GetInstanceRequest(ref=uuid)

    def grpc_get(client: Grpc = direct) -> object:
        return client.stub.GetInstance(get_request, metadata=client.metadata)

    def rest_get(client: Rest = rest) -> object:
        return client.call("GET", f"/instances/{uuid}")

    print("gateway benchmark (REST through the gateway vs direct gRPC to the api)")
    samples = rotated_latencies([grpc_get, rest_get, lambda: rest_get(kept)], LATENCY_ROUNDS)
    grpc_ms, rest_ms, kept_ms = (p50(side) for side in samples)
    print(
        f"  GetInstance p50:       gRPC {grpc_ms:.2f} ms   REST {rest_ms:.2f} ms   "
        f"ratio {rest_ms / grpc_ms:.2f}x (target <= 1.5x)   "
        f"under uvicorn {kept_ms:.2f} ms, {kept_ms / grpc_ms:.2f}x"
    )

    def grpc_client() -> Call:
        client = Grpc(mesh.address("api"), token)
        return lambda: grpc_get(client)

    def rest_client(port: int = mesh.ports.gateway) -> Call:
        client = Rest(port, token)
        return lambda: rest_get(client)

    grpc_rate = throughput(grpc_client, CLIENTS, THROUGHPUT_SECONDS)
    rest_rate = throughput(rest_client, CLIENTS, THROUGHPUT_SECONDS)
    kept_rate = throughput(lambda: rest_client(uvicorn_port), CLIENTS, THROUGHPUT_SECONDS)
    print(
        f"  {CLIENTS} clients throughput: gRPC {grpc_rate:.0f}/s   REST {rest_rate:.0f}/s   "
        f"ratio {rest_rate / grpc_rate:.2f}x (target >= 0.6x)   "
        f"under uvicorn {kept_rate:.0f}/s, {kept_rate / grpc_rate:.2f}x"
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
