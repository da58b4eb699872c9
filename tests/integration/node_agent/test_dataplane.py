"""services/node_agent/dataplane.py against the real kernel, iproute2 and
dnsmasq: a guest namespace of the test's own joins the network's bridge and
busybox udhcpc proves which address dnsmasq hands it. Two nodes are two data
planes whose underlays are namespaces of the test joined by a veth; busybox
ping proves what crosses between them over VXLAN, and what does not. The
outside is a namespace on an egress bridge of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import os
import secrets
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.node_agent.commands import DataPlaneError
from services.node_agent.dataplane import (
    DataPlane,
    NetworkPlan,
    Underlay,
    flood_targets,
    names,
)
from services.node_agent.nat import Egress

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("dnsmasq"),
    reason="needs root, iproute2 and dnsmasq",
)

NETBLOCK = "10.251.7.0/24"
GATEWAY = "10.251.7.1"
MAC = "52:54:00:5f:00:01"
LEASE_SCRIPT = '#!/bin/sh\n[ "$1" = bound ] && echo "LEASE $ip $router"\nexit 0\n'


@pytest.fixture
def root() -> Iterator[Path]:
    """A networks folder that dnsmasq, running as nobody, can traverse."""
    folder = Path(tempfile.mkdtemp(prefix="sfmesh-dataplane-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder / "networks"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def plane(root: Path) -> DataPlane:
    """The data plane of a node named for this test alone."""
    return DataPlane(f"t{secrets.token_hex(3)}", root)


@pytest.fixture
async def plan(plane: DataPlane) -> AsyncIterator[NetworkPlan]:
    """A DHCP network of random uuid and vxlan id, scrubbed afterwards even
    when `remove` fails."""
    plan = NetworkPlan(str(uuid.uuid4()), secrets.randbelow(2**24 - 1) + 1, NETBLOCK, True)
    yield plan
    try:
        await plane.remove(plan)
    finally:
        n = names(plane.node, plan.vxlan_id)
        await ip("link", "delete", n.outer, check=False)
        await ip("netns", "delete", n.netns, check=False)
        await ip("link", "delete", n.bridge, check=False)


async def ip(*argv: str, check: bool = True) -> str:
    """Run `ip argv...`; its stdout."""
    child = await asyncio.create_subprocess_exec(
        "ip", *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await child.communicate()
    assert child.returncode == 0 or not check, stderr.decode()
    return stdout.decode()


async def link(name: str, netns: str | None = None) -> dict[str, Any] | None:
    """`ip -d link show` of one interface, or None when it does not exist."""
    where = ["-n", netns] if netns else []
    text = await ip(*where, "-j", "-d", "link", "show", "dev", name, check=False)
    return json.loads(text)[0] if text else None


async def addresses(netns: str, name: str) -> list[str]:
    text = await ip("-n", netns, "-4", "-j", "addr", "show", "dev", name)
    return [f"{a['local']}/{a['prefixlen']}" for a in json.loads(text)[0]["addr_info"]]


def program(pid: int) -> str:
    """The program a live process runs; "" once it is gone (or a zombie)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""


def dnsmasq_pid(plane: DataPlane, plan: NetworkPlan) -> int | None:
    """The pid in the network's pid file when that process is a dnsmasq."""
    try:
        pid = int((plane.root / plan.uuid / "dnsmasq.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if program(pid) == "dnsmasq" else None


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


@contextlib.asynccontextmanager
async def guest(bridge: str, mac: str) -> AsyncIterator[tuple[str, str]]:
    """A namespace of the test's own with a veth of MAC `mac` whose other end
    is on `bridge`; yields (namespace, interface)."""
    tag = secrets.token_hex(3)
    netns, outer, inner = f"sftg{tag}", f"sftgo{tag}", f"sftgi{tag}"
    try:
        await ip("netns", "add", netns)
        await ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", netns)
        await ip("link", "set", outer, "master", bridge, "up")
        await ip("-n", netns, "link", "set", inner, "address", mac, "up")
        yield netns, inner
    finally:
        await ip("link", "delete", outer, check=False)
        await ip("netns", "delete", netns, check=False)


async def lease(busybox: str, script: Path, netns: str, interface: str) -> str | None:
    """The address and router udhcpc obtains in `netns`, or None."""
    child = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, busybox, "udhcpc",
        "-n", "-q", "-f", "-i", interface, "-s", str(script), "-t", "2", "-T", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, _ = await child.communicate()
    found = [
        line.removeprefix("LEASE ") for line in stdout.decode().splitlines() if "LEASE " in line
    ]
    return found[0] if child.returncode == 0 and found else None


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "udhcpc.sh"
    path.write_text(LEASE_SCRIPT)
    path.chmod(0o755)
    return path


async def test_dhcp_serves_exactly_the_pinned_address(
    plane: DataPlane, plan: NetworkPlan, busybox: str, script: Path
) -> None:
    n = names(plane.node, plan.vxlan_id)

    bridge = await plane.ensure(plan)
    assert bridge == n.bridge
    info = await link(n.bridge)
    assert info is not None and "UP" in info["flags"]
    assert info["linkinfo"]["info_data"]["stp_state"] == 0
    outer = await link(n.outer)
    assert outer is not None and outer["master"] == n.bridge
    assert await addresses(n.netns, n.inner) == [f"{GATEWAY}/24"]
    lo = await link("lo", n.netns)
    assert lo is not None and "UP" in lo["flags"]
    pid = dnsmasq_pid(plane, plan)
    assert pid is not None

    assert await plane.ensure(plan) == n.bridge
    assert dnsmasq_pid(plane, plan) == pid

    async with guest(bridge, MAC) as (netns, interface):
        assert await lease(busybox, script, netns, interface) is None  # static: pins only
        log = (plane.root / plan.uuid / "dnsmasq.log").read_text()
        assert f"{MAC} no address available" in log
        await plane.set_hosts(plan, {MAC: "10.251.7.23"})
        assert await lease(busybox, script, netns, interface) == f"10.251.7.23 {GATEWAY}"
        await plane.set_hosts(plan, {MAC.upper(): "10.251.7.42"})
        assert await lease(busybox, script, netns, interface) == f"10.251.7.42 {GATEWAY}"
    assert dnsmasq_pid(plane, plan) == pid

    await plane.remove(plan)
    assert await link(n.bridge) is None
    assert await link(n.outer) is None
    assert not netns_exists(n.netns)
    assert program(pid) != "dnsmasq"
    assert not (plane.root / plan.uuid).exists()
    await plane.remove(plan)


async def test_ensure_completes_a_network_left_half_built(
    plane: DataPlane, plan: NetworkPlan
) -> None:
    n = names(plane.node, plan.vxlan_id)
    await plane.ensure(plan)
    await plane.set_hosts(plan, {MAC: "10.251.7.23"})

    first = dnsmasq_pid(plane, plan)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    await ip("link", "delete", n.outer)
    await plane.ensure(plan)
    second = dnsmasq_pid(plane, plan)
    assert second not in (None, first)
    assert await addresses(n.netns, n.inner) == [f"{GATEWAY}/24"]

    # A namespace deleted under its dnsmasq lives on with the old veth.
    await ip("netns", "delete", n.netns)
    await plane.ensure(plan)
    third = dnsmasq_pid(plane, plan)
    assert third not in (None, second)
    assert await addresses(n.netns, n.inner) == [f"{GATEWAY}/24"]
    assert (plane.root / plan.uuid / "hosts").read_text() == f"{MAC},10.251.7.23\n"


async def test_dhcp_follows_the_plan(plane: DataPlane, plan: NetworkPlan) -> None:
    n = names(plane.node, plan.vxlan_id)
    without = dataclasses.replace(plan, provide_dhcp=False)
    await plane.ensure(without)
    assert await addresses(n.netns, n.inner) == [f"{GATEWAY}/24"]
    assert dnsmasq_pid(plane, plan) is None
    await plane.set_hosts(without, {MAC: "10.251.7.23"})
    assert not (plane.root / plan.uuid).exists()

    await plane.ensure(plan)
    pid = dnsmasq_pid(plane, plan)
    assert pid is not None
    await plane.ensure(without)
    assert dnsmasq_pid(plane, plan) is None
    assert program(pid) != "dnsmasq"


async def test_remove_spares_a_process_that_is_not_its_dnsmasq(
    plane: DataPlane, plan: NetworkPlan
) -> None:
    folder = plane.root / plan.uuid
    folder.mkdir(parents=True)
    stranger = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        (folder / "dnsmasq.pid").write_text(f"{stranger.pid}\n")
        await plane.remove(plan)
        assert program(stranger.pid) == "sleep"
        assert not folder.exists()
    finally:
        stranger.kill()
        await stranger.wait()


async def test_a_failing_command_names_itself_and_its_error(
    plane: DataPlane, plan: NetworkPlan
) -> None:
    n = names(plane.node, plan.vxlan_id)
    await plane.ensure(plan)
    await ip("link", "delete", n.outer)
    await ip("-n", n.netns, "link", "add", n.inner, "type", "bridge")
    with pytest.raises(DataPlaneError) as error:
        await plane.ensure(plan)
    assert f"ip link add {n.outer} type veth peer name {n.inner}" in str(error.value)
    assert "File exists" in str(error.value)


@pytest.fixture
async def underlays() -> AsyncIterator[tuple[Underlay, Underlay]]:
    """Two nodes' underlays: a namespace each, joined by a veth."""
    tag = secrets.token_hex(3)
    a, b = f"sftu{tag}a", f"sftu{tag}b"
    try:
        for netns in (a, b):
            await ip("netns", "add", netns)
            await ip("-n", netns, "link", "set", "lo", "up")
        await ip("link", "add", "sftua", "netns", a, "type", "veth", "peer", "name", "sftub",
                 "netns", b)  # fmt: skip
        for netns, veth, address in ((a, "sftua", "10.253.0.1"), (b, "sftub", "10.253.0.2")):
            await ip("-n", netns, "addr", "add", f"{address}/24", "dev", veth)
            await ip("-n", netns, "link", "set", veth, "up")
        yield Underlay("10.253.0.1", a), Underlay("10.253.0.2", b)
    finally:
        for netns in (a, b):
            await ip("netns", "delete", netns, check=False)


@pytest.fixture
async def two_nodes(
    root: Path, underlays: tuple[Underlay, Underlay]
) -> AsyncIterator[tuple[DataPlane, DataPlane]]:
    """Data planes of two nodes (each with its own state folder), peered."""
    tag = secrets.token_hex(3)
    planes = (
        DataPlane(f"t{tag}a", root / "a", underlays[0]),
        DataPlane(f"t{tag}b", root / "b", underlays[1]),
    )
    await planes[0].set_peers(frozenset({underlays[1].address}))
    await planes[1].set_peers(frozenset({underlays[0].address}))
    yield planes


async def pings(busybox: str, netns: str, address: str, tries: int = 3) -> bool:
    """Whether `address` answers a ping from `netns` within `tries` seconds."""
    child = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, busybox, "ping", "-c", "1", "-W", str(tries), address,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await child.wait() == 0


async def with_address(netns: str, interface: str, address: str) -> None:
    await ip("-n", netns, "addr", "add", f"{address}/24", "dev", interface)


async def test_a_network_spans_nodes_and_stays_apart_from_others(
    two_nodes: tuple[DataPlane, DataPlane], busybox: str, script: Path
) -> None:
    a, b = two_nodes
    plan = NetworkPlan(str(uuid.uuid4()), secrets.randbelow(2**24 - 2) + 1, NETBLOCK, True)
    other = NetworkPlan(str(uuid.uuid4()), plan.vxlan_id + 1, NETBLOCK, True)  # same block
    try:
        bridge_a, bridge_b = await a.ensure(plan), await b.ensure(plan)
        vxlan = await link(names(a.node, plan.vxlan_id).vxlan)
        assert vxlan is not None and vxlan["master"] == bridge_a and vxlan["mtu"] == 1450
        assert vxlan["linkinfo"]["info_data"]["id"] == plan.vxlan_id
        assert vxlan["linkinfo"]["info_slave_data"]["isolated"] is True
        fdb = await bridge_fdb(names(a.node, plan.vxlan_id).vxlan)
        assert flood_targets(fdb) == {"10.253.0.2"}
        await a.set_hosts(plan, {MAC: "10.251.7.10"})
        await b.set_hosts(plan, {"52:54:00:5f:00:02": "10.251.7.11"})
        other_bridge = await b.ensure(other)

        async with (
            guest(bridge_a, MAC) as (ns_a, if_a),
            guest(bridge_b, "52:54:00:5f:00:02") as (ns_b, if_b),
            guest(other_bridge, "52:54:00:5f:00:03") as (ns_c, if_c),
        ):
            # Each node's own dnsmasq answers its own guests, with the MTU.
            assert await lease(busybox, script, ns_b, if_b) == f"10.251.7.11 {GATEWAY}"
            await with_address(ns_a, if_a, "10.251.7.10")
            await with_address(ns_b, if_b, "10.251.7.11")
            await with_address(ns_c, if_c, "10.251.7.10")
            log_b = (b.root / plan.uuid / "dnsmasq.log").read_text()
            assert "option: 26 mtu  1450" in log_b

            assert await pings(busybox, ns_b, "10.251.7.10")  # across nodes
            assert await pings(busybox, ns_b, GATEWAY)  # node b's own gateway
            neighbour = await ip("-n", ns_b, "neigh", "show", GATEWAY)
            inner_b = await link(
                names(b.node, plan.vxlan_id).inner, names(b.node, plan.vxlan_id).netns
            )
            assert inner_b is not None and inner_b["address"] in neighbour
            # The other network holds the same addresses, and none of this.
            assert not await pings(busybox, ns_c, "10.251.7.11", tries=2)
            assert not await pings(busybox, ns_a, "10.251.7.12", tries=1)

        await a.set_peers(frozenset())
        assert flood_targets(await bridge_fdb(names(a.node, plan.vxlan_id).vxlan)) == set()
    finally:
        await a.remove(plan)
        await b.remove(plan)
        await b.remove(other)
    for plane, network in ((a, plan), (b, plan), (b, other)):
        assert await link(names(plane.node, network.vxlan_id).vxlan) is None
        assert await link(names(plane.node, network.vxlan_id).bridge) is None


async def bridge_fdb(device: str) -> str:
    child = await asyncio.create_subprocess_exec(
        "bridge", "fdb", "show", "dev", device, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await child.communicate()
    return stdout.decode()


POOL = ipaddress.IPv4Network("10.254.0.0/24")
ROUTER = "10.254.0.1"


@pytest.fixture
async def outside() -> AsyncIterator[tuple[Egress, str]]:
    """An egress bridge and, on it, the outside: a namespace holding the
    floating pool's router address. Yields (egress, outside namespace)."""
    tag = secrets.token_hex(3)
    bridge, netns = f"sftq{tag}", f"sftw{tag}"
    try:
        await ip("link", "add", bridge, "type", "bridge")
        await ip("link", "set", bridge, "up")
        await ip("netns", "add", netns)
        await ip("link", "add", f"sftwo{tag}", "type", "veth", "peer", "name", "w0", "netns", netns)
        await ip("link", "set", f"sftwo{tag}", "master", bridge, "up")
        await ip("-n", netns, "addr", "add", f"{ROUTER}/24", "dev", "w0")
        await ip("-n", netns, "link", "set", "w0", "up")
        yield Egress(bridge, POOL), netns
    finally:
        await ip("netns", "delete", netns, check=False)
        await ip("link", "delete", f"sftwo{tag}", check=False)
        await ip("link", "delete", bridge, check=False)


async def peer_seen(client_netns: str, server_netns: str, server: str) -> str:
    """The source address a TCP server in `server_netns` sees when a client
    in `client_netns` connects to `server`."""
    serve = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", server_netns, "python3", "-c",
        "import socket; s = socket.create_server(('0.0.0.0', 7777)); print('up', flush=True);"
        " c, a = s.accept(); print(a[0], flush=True)",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert serve.stdout is not None
    try:
        assert await asyncio.wait_for(serve.stdout.readline(), 10) == b"up\n"
        connect = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", client_netns, "python3", "-c",
            f"import socket; socket.create_connection(('{server}', 7777), timeout=5)",
        )  # fmt: skip
        assert await connect.wait() == 0
        return (await asyncio.wait_for(serve.stdout.readline(), 10)).decode().strip()
    finally:
        with contextlib.suppress(ProcessLookupError):
            serve.kill()
        await serve.wait()


async def test_nat_masquerades_a_network_floats_nics_and_keeps_the_outside_out(
    root: Path, outside: tuple[Egress, str], busybox: str
) -> None:
    egress, outside_netns = outside
    plane = DataPlane(f"t{secrets.token_hex(3)}", root, egress=egress)
    plan = NetworkPlan(str(uuid.uuid4()), secrets.randbelow(2**24 - 1) + 1, NETBLOCK, False, True)
    n = names(plane.node, plan.vxlan_id)
    try:
        bridge = await plane.ensure(plan, egress_address="10.254.0.7")
        assert (await link(n.egress_outer) or {}).get("master") == egress.bridge
        assert await addresses(n.netns, n.egress_inner) == ["10.254.0.7/24"]
        async with guest(bridge, MAC) as (netns, interface):
            await with_address(netns, interface, "10.251.7.10")
            await ip("-n", netns, "route", "add", "default", "via", GATEWAY)
            assert await pings(busybox, netns, ROUTER)
            assert await peer_seen(netns, outside_netns, ROUTER) == "10.254.0.7"
            # The outside cannot reach in, even routing the block at the network.
            await ip("-n", outside_netns, "route", "add", NETBLOCK, "via", "10.254.0.7")
            assert not await pings(busybox, outside_netns, "10.251.7.10", tries=1)

            # A new egress address replaces the old one.
            await plane.ensure(plan, egress_address="10.254.0.8")
            assert await addresses(n.netns, n.egress_inner) == ["10.254.0.8/24"]
            assert await peer_seen(netns, outside_netns, ROUTER) == "10.254.0.8"

            # A floating address reaches the guest, and the guest leaves from it.
            await plane.set_floats(plan, {"10.254.0.20": "10.251.7.10"})
            assert await pings(busybox, outside_netns, "10.254.0.20")
            assert await peer_seen(netns, outside_netns, ROUTER) == "10.254.0.20"
            assert await peer_seen(outside_netns, netns, "10.254.0.20") == ROUTER
            await plane.set_floats(plan, {})
            assert not await pings(busybox, outside_netns, "10.254.0.20", tries=1)
            assert await addresses(n.netns, n.egress_inner) == ["10.254.0.8/24"]

            # Without an egress address, no NAT is left, and nothing floats.
            await plane.ensure(plan)
            assert await link(n.egress_outer) is None
            assert not await pings(busybox, netns, ROUTER, tries=1)
            with pytest.raises(DataPlaneError, match="no NAT on this node"):
                await plane.set_floats(plan, {"10.254.0.20": "10.251.7.10"})
        await plane.ensure(plan, egress_address="10.254.0.7")
    finally:
        await plane.remove(plan)
    assert await link(n.egress_outer) is None
    assert not netns_exists(n.netns)
