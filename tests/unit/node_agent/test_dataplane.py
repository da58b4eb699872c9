"""services/node_agent/dataplane.py without the kernel: names and the hosts
file of its networks' dnsmasq (`test_dnsmasq.py` has the file's rules)."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from services.node_agent.dataplane import (
    MAX_VXLAN_ID,
    DataPlane,
    NetworkPlan,
    Underlay,
    flood_targets,
    names,
)

PLAN = NetworkPlan(
    uuid="6f2c1a9e-0b7d-4c55-9a43-2d1e8f0c7b31",
    vxlan_id=14823439,
    netblock="10.250.0.0/24",
    provide_dhcp=True,
)


def all_names(node: str, vxlan_id: int) -> list[str]:
    n = names(node, vxlan_id)
    return [n.bridge, n.outer, n.inner, n.netns, n.vxlan, n.egress_outer, n.egress_inner]


@pytest.mark.parametrize("vxlan_id", [1, 14823439, MAX_VXLAN_ID])
@pytest.mark.parametrize("node", ["a", "hypervisor-with-a-very-long-name.example.com"])
def test_names_fit_the_kernel_limit(node: str, vxlan_id: int) -> None:
    for name in all_names(node, vxlan_id):
        assert len(name) <= 15
        assert name.isalnum()


def test_names_are_deterministic_and_show_the_vxlan_id() -> None:
    assert names("node-1", 14823439) == names("node-1", 14823439)
    assert names("node-1", 14823439).bridge.endswith("e2300f")


def test_names_differ_across_nodes_vxlan_ids_and_kinds() -> None:
    seen = [
        name
        for node in ("a", "b", "a-b", "node-1", "node-2")
        for vxlan_id in (1, 2, 0x100, 14823439)
        for name in all_names(node, vxlan_id)
    ]
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("vxlan_id", [0, -1, MAX_VXLAN_ID + 1])
def test_names_refuse_a_vxlan_id_out_of_range(vxlan_id: int) -> None:
    with pytest.raises(ValueError):
        names("a", vxlan_id)


async def test_set_hosts_writes_a_sorted_world_readable_hosts_file(tmp_path: Path) -> None:
    root = tmp_path / "networks"
    await DataPlane("a", root).set_hosts(
        PLAN, {"52:54:00:00:00:02": "10.250.0.9", "52:54:00:00:00:0A": "10.250.0.254"}
    )
    hosts = root / PLAN.uuid / "hosts"
    assert hosts.read_text() == "52:54:00:00:00:02,10.250.0.9\n52:54:00:00:00:0a,10.250.0.254\n"
    assert stat.S_IMODE(hosts.stat().st_mode) == 0o644
    assert stat.S_IMODE(hosts.parent.stat().st_mode) == 0o755
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
    await DataPlane("a", root).set_hosts(PLAN, {})
    assert hosts.read_text() == ""


async def test_set_hosts_refuses_bad_pins_before_making_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        await DataPlane("a", tmp_path).set_hosts(PLAN, {"52:54:00:00:00:02": "10.250.0.1"})
    assert not (tmp_path / PLAN.uuid).exists()


async def test_set_hosts_is_a_no_op_without_dhcp(tmp_path: Path) -> None:
    plan = dataclasses.replace(PLAN, provide_dhcp=False)
    await DataPlane("a", tmp_path).set_hosts(plan, {"52:54:00:00:00:02": "10.250.0.9"})
    assert not (tmp_path / PLAN.uuid).exists()


async def test_a_uuid_that_is_not_one_never_becomes_a_path(tmp_path: Path) -> None:
    plan = dataclasses.replace(PLAN, uuid="../..")
    with pytest.raises(ValueError):
        await DataPlane("a", tmp_path / "networks").set_hosts(plan, {})


def test_flood_targets_reads_only_the_all_zero_entries() -> None:
    fdb = (
        "00:00:00:00:00:00 dst 10.99.0.2 link-netnsid 0 self permanent\n"
        "00:00:00:00:00:00 dst 10.99.0.3 self permanent\n"
        "52:54:00:12:34:56 dst 10.99.0.2 self\n"
        "33:33:00:00:00:01 master sfb123456000001 permanent\n"
        "de:ad:be:ef:00:01 vlan 1 master sfb123456000001 permanent\n"
    )
    assert flood_targets(fdb) == {"10.99.0.2", "10.99.0.3"}
    assert flood_targets("") == set()


def test_guests_get_the_underlay_mtu_less_the_vxlan_headers() -> None:
    assert Underlay("10.99.0.1").overlay_mtu == 1450
    assert Underlay("10.99.0.1", mtu=9000).overlay_mtu == 8950
