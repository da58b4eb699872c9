"""One network across two nodes: two more node agents whose underlays are
namespaces of the test's own, joined by a veth, as if they were two hosts,
and whose egress bridge leads to an outside namespace holding the floating
pool's router. Tiny Linux guests ping each other across the nodes over
VXLAN and reach the outside through NAT, the outside reaches a floated one,
while a guest on another network with the very same netblock and no NAT
reaches none of them."""

from __future__ import annotations

import base64
import functools
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devmesh.mesh import Mesh
from guests.serve import ImageServer
from guests.testguest import ensure_test_guest
from tests.e2e.conftest import FLOATING_POOL, extra_node_agent
from tests.e2e.test_nics import BUILD_DIR, network
from tests.e2e.test_vms import wait_for

pytestmark = pytest.mark.slow

NETBLOCK = "10.251.9.0/24"
GATEWAY = "10.251.9.1"
UNDERLAY = ("10.252.0.1", "10.252.0.2")
ROUTER = "10.254.9.1"


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


@pytest.fixture(scope="module")
def two_nodes(mesh: Mesh) -> Iterator[tuple[str, str, str]]:
    """Two node agents whose underlays are namespaces joined by a veth, and
    whose egress bridge leads to the outside: a namespace holding the router."""
    tag = uuid.uuid4().hex[:6]
    spaces = (f"sfe2e{tag}x", f"sfe2e{tag}y")
    outside, egress = f"sfe2e{tag}o", f"sfe2e{tag}b"
    common = {"SFMESH_EGRESS_BRIDGE": egress}
    try:
        ip("link", "add", egress, "type", "bridge")
        ip("link", "set", egress, "up")
        ip("netns", "add", outside)
        ip("link", "add", f"{egress}o", "master", egress, "type", "veth", "peer", "name", "w0",
           "netns", outside)  # fmt: skip
        ip("link", "set", f"{egress}o", "up")
        ip("-n", outside, "addr", "add", f"{ROUTER}/{FLOATING_POOL.split('/')[1]}", "dev", "w0")
        ip("-n", outside, "link", "set", "w0", "up")
        for netns in spaces:
            ip("netns", "add", netns)
            ip("-n", netns, "link", "set", "lo", "up")
        ip("link", "add", "u0", "netns", spaces[0], "type", "veth", "peer", "name", "u1",
           "netns", spaces[1])  # fmt: skip
        for netns, veth, address in zip(spaces, ("u0", "u1"), UNDERLAY, strict=True):
            ip("-n", netns, "addr", "add", f"{address}/24", "dev", veth)
            ip("-n", netns, "link", "set", veth, "up")
        with (
            extra_node_agent(
                mesh,
                f"{mesh.node_name}-x",
                {
                    **common,
                    "SFMESH_UNDERLAY_ADDRESS": UNDERLAY[0],
                    "SFMESH_UNDERLAY_NETNS": spaces[0],
                },
            ) as x,
            extra_node_agent(
                mesh,
                f"{mesh.node_name}-y",
                {
                    **common,
                    "SFMESH_UNDERLAY_ADDRESS": UNDERLAY[1],
                    "SFMESH_UNDERLAY_NETNS": spaces[1],
                },
            ) as y,
        ):
            yield x, y, outside
    finally:
        for netns in (*spaces, outside):
            subprocess.run(["ip", "netns", "delete", netns], check=False, capture_output=True)
        for link in (f"{egress}o", egress):
            subprocess.run(["ip", "link", "delete", link], check=False, capture_output=True)


def probe_script(*probes: tuple[str, int]) -> str:
    """user_data for the test guest: ping each (address, seconds) in turn,
    once a second until it answers or the seconds run out, and say which."""
    lines = ["#!/bin/sh"]
    for address, seconds in probes:
        lines.append(
            f"i=0; while [ $i -lt {seconds} ]; do "
            f"ping -c 1 -W 1 {address} >/dev/null 2>&1 && break; i=$((i+1)); done; "
            f"[ $i -lt {seconds} ] && echo 'TESTGUEST PROBE {address} reachable' "
            f"|| echo 'TESTGUEST PROBE {address} unreachable'"
        )
    return base64.b64encode(("\n".join(lines) + "\n").encode()).decode()


def console(rest: httpx.Client, instance: dict[str, Any]) -> str:
    reply = rest.get(f"/instances/{instance['uuid']}/consoledata", params={"length": -1})
    return reply.content.decode(errors="replace")


def marker(rest: httpx.Client, instance: dict[str, Any], pattern: str) -> str | None:
    found = re.search(pattern, console(rest, instance))
    return found.group(0) if found else None


def node_created(rest: httpx.Client, node: str) -> bool:
    return bool(rest.get(f"/nodes/{node}").json().get("state") == "created")


def answers(busybox: str, netns: str, address: str) -> bool:
    """Whether `address` answers a ping from `netns` within 3 s."""
    argv = ["ip", "netns", "exec", netns, busybox, "ping", "-c", "1", "-W", "3", address]
    return subprocess.run(argv, check=False, capture_output=True).returncode == 0


def test_a_network_spans_two_nodes_and_no_other_network_sees_it(
    rest: httpx.Client, image_server: ImageServer, two_nodes: tuple[str, str, str], busybox: str
) -> None:
    x, y, outside = two_nodes
    for node in (x, y):
        wait_for(functools.partial(node_created, rest, node))
    guest = image_server.publish("testguest-overlay.raw", ensure_test_guest(BUILD_DIR).read_bytes())
    near, far = network(rest, NETBLOCK), network(rest, NETBLOCK, provide_nat=False)

    def create(name: str, node: str, net: dict[str, Any], address: str, **extra: Any) -> Any:
        reply = rest.post(
            "/instances",
            json={
                "name": name,
                "cpus": 1,
                "memory": 128,
                "disk": [{"size": 1, "base": guest}],
                "network": [{"network_uuid": net["uuid"], "address": address}],
                "placed_on": node,
                **extra,
            },
        )
        assert reply.status_code == 200, reply.text
        return reply.json()

    made = [create("overlay-a", x, near, "10.251.9.10", user_data=probe_script((ROUTER, 30)))]
    try:
        wait_for(functools.partial(marker, rest, made[0], "TESTGUEST READY"), timeout=120)
        made.append(
            create(
                "overlay-b",
                y,
                near,
                "10.251.9.11",
                user_data=probe_script((GATEWAY, 30), ("10.251.9.10", 30), (ROUTER, 30)),
            )
        )
        made.append(
            create(
                "overlay-c",
                y,
                far,
                "10.251.9.11",
                user_data=probe_script((GATEWAY, 30), ("10.251.9.10", 8), (ROUTER, 3)),
            )
        )
        a, b, c = made
        for instance in made:
            wait_for(
                functools.partial(marker, rest, instance, r"TESTGUEST USERDATA exit=\d+"),
                timeout=180,
            )
        # Across the nodes, over VXLAN; each network's own gateway answers.
        assert "TESTGUEST PROBE 10.251.9.10 reachable" in console(rest, b)
        assert f"TESTGUEST PROBE {GATEWAY} reachable" in console(rest, b)
        # The other network works, and holds the same addresses, apart.
        assert f"TESTGUEST PROBE {GATEWAY} reachable" in console(rest, c)
        assert "TESTGUEST PROBE 10.251.9.10 unreachable" in console(rest, c)
        # NAT to the outside from either node; none without it.
        assert f"TESTGUEST PROBE {ROUTER} reachable" in console(rest, a)
        assert f"TESTGUEST PROBE {ROUTER} reachable" in console(rest, b)
        assert f"TESTGUEST PROBE {ROUTER} unreachable" in console(rest, c)
        lease = marker(rest, b, r"TESTGUEST LEASE [^\r\n]*")
        assert lease is not None and "ip=10.251.9.11/24" in lease

        # Floated, guest a answers the outside at its floating address.
        nic = a["interfaces"][0]
        assert rest.post(f"/interfaces/{nic['uuid']}/float").status_code == 200
        floating = rest.get(f"/interfaces/{nic['uuid']}").json()["floating"]
        wait_for(functools.partial(answers, busybox, outside, floating), timeout=30)
        assert rest.post(f"/interfaces/{nic['uuid']}/defloat").status_code == 200
        wait_for(lambda: not answers(busybox, outside, floating), timeout=30)
    finally:
        for instance in made:
            rest.delete(f"/instances/{instance['uuid']}")
        for net in (near, far):
            rest.delete(f"/networks/{net['uuid']}")
