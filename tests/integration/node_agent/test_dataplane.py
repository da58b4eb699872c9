"""services/node_agent/dataplane.py against the real kernel, iproute2 and
dnsmasq: a guest namespace of the test's own joins the network's bridge and
busybox udhcpc proves which address dnsmasq hands it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.node_agent.dataplane import DataPlane, DataPlaneError, NetworkPlan, names

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("dnsmasq"),
    reason="needs root, iproute2 and dnsmasq",
)

NETBLOCK = "10.251.7.0/24"
GATEWAY = "10.251.7.1"
MAC = "52:54:00:5f:00:01"
LEASE_SCRIPT = '#!/bin/sh\n[ "$1" = bound ] && echo "LEASE $ip $router"\nexit 0\n'


@pytest.fixture(scope="session")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox binary: the one on PATH, else Debian's busybox-static unpacked."""
    found = shutil.which("busybox")
    if found:
        return found
    folder = tmp_path_factory.mktemp("busybox")
    try:
        subprocess.run(
            ["apt-get", "download", "-qq", "busybox-static"],
            cwd=folder, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        (deb,) = folder.glob("busybox-static_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(folder)], check=True, timeout=60)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        pytest.skip(f"no busybox for udhcpc: {error}")
    return str(folder / "bin" / "busybox")


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
