"""What TLS costs REST throughput: the same one-host mesh twice, once with
every role on TLS (HTTPS to the gateway, mutual TLS from it to the api) and
once in plaintext, both running at once, measured alternately in the same
run: `ROUNDS` rounds of `GET /instances/{uuid}` from `CLIENTS` keep-alive
clients, for `ROUND_SECONDS` each, against one mesh and then the other
(which goes first alternates), so a change in the machine's load weighs on
both alike. The baseline is the plaintext mesh's rate; the cost is how much
less the TLS mesh serves (target <= 15 %).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator

from bench.gateway import Call, Rest, throughput
from bench.harness import quiet_mesh, trusting
from bench.simulated_nodes import SimulatedNodes
from devmesh.mesh import Mesh

CLIENTS = 8
ROUNDS = 6
ROUND_SECONDS = 3.0
TARGET = 0.15
"""The most TLS may cost, as a share of the plaintext throughput."""
SPEC = {"cpus": 1, "memory": 256, "disk": [{"size": 1, "base": "debian:11"}]}


@contextlib.contextmanager
def serving_instance(tls: bool) -> Iterator[tuple[Mesh, str, str]]:
    """A mesh (with `tls` or not) on a simulated node, a token, and an
    instance of it to read."""
    with quiet_mesh(tls=tls) as mesh, SimulatedNodes(mesh, 1):
        token = Rest.token(mesh)
        rest = Rest(mesh.ports.gateway, token, context=trusting(mesh))
        made = json.loads(rest.call("POST", "/instances", {"name": "tls-cost", **SPEC}))
        yield mesh, token, str(made["uuid"])


def readers(side: tuple[Mesh, str, str]) -> Callable[[], Call]:
    """What makes one keep-alive client reading the side's instance."""
    mesh, token, uuid = side

    def reader() -> Call:
        client = Rest(mesh.ports.gateway, token, context=trusting(mesh))
        return lambda: client.call("GET", f"/instances/{uuid}")

    return reader


def main() -> None:
    """Start both meshes, then measure them in alternating rounds."""
    with serving_instance(tls=True) as secure, serving_instance(tls=False) as plain:
        rates: dict[str, list[float]] = {"tls": [], "plaintext": []}
        sides = {"tls": secure, "plaintext": plain}
        for index in range(ROUNDS):
            order = ["tls", "plaintext"] if index % 2 == 0 else ["plaintext", "tls"]
            for side in order:
                rates[side].append(throughput(readers(sides[side]), CLIENTS, ROUND_SECONDS))
    tls_rate = sum(rates["tls"]) / ROUNDS
    plain_rate = sum(rates["plaintext"]) / ROUNDS
    cost = 1 - tls_rate / plain_rate
    verdict = "ok" if cost <= TARGET else f"over {TARGET:.0%}"
    print(f"TLS cost (GET /instances/{{uuid}}, {CLIENTS} keep-alive clients, {ROUNDS} rounds each)")
    print(
        f"  plaintext {plain_rate:.0f}/s (baseline)   TLS {tls_rate:.0f}/s"
        f"   ratio {tls_rate / plain_rate:.2f}x"
        f"   cost {cost:.1%} (target <= {TARGET:.0%}) {verdict}"
    )
    per_round = "  ".join(
        f"{tls:.0f}/{plain:.0f}"
        for tls, plain in zip(rates["tls"], rates["plaintext"], strict=True)
    )
    print(f"  rounds (TLS/plaintext): {per_round}", flush=True)
