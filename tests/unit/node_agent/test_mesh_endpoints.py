"""services/node_agent/mesh_endpoints.py, its pure part: the configured
endpoints (every api and eventlog replica among them) and etcd members' URLs."""

from __future__ import annotations

from pathlib import Path

from services.common.config import MeshConfig
from services.common.store import Member
from services.node_agent.mesh_endpoints import configured_endpoints, member_endpoints


def test_each_replica_of_a_comma_separated_api_and_eventlog_is_an_endpoint() -> None:
    mesh = MeshConfig(
        state_dir=Path("/x"),
        etcd=("10.0.0.1:13379",),
        api="10.0.0.1:13010, 10.0.0.2:13010,10.0.0.3:13010",
        scheduler="10.0.0.1:13011",
        eventlog="10.0.0.1:13012,10.0.0.2:13012",
        gateway="10.0.0.1:13000",
    )
    found = configured_endpoints(mesh, "10.0.1.1:13020", "10.0.1.1:13020")
    assert [address for name, address in found if name == "the mesh's api"] == [
        "10.0.0.1:13010",
        "10.0.0.2:13010",
        "10.0.0.3:13010",
    ]
    assert [address for name, address in found if name == "the mesh's eventlog"] == [
        "10.0.0.1:13012",
        "10.0.0.2:13012",
    ]


def test_every_peer_and_client_url_of_every_member_is_an_endpoint() -> None:
    members = [
        Member("a", ("http://10.0.0.1:2380",), ("http://10.0.0.1:2379", "http://127.0.0.1:2379")),
        Member("b", ("https://[fd00::2]:2380",), ("https://etcd-b.example",)),
    ]
    assert member_endpoints(members) == [
        ("the mesh's etcd member a (peer URL)", "10.0.0.1:2380"),
        ("the mesh's etcd member a (client URL)", "10.0.0.1:2379"),
        ("the mesh's etcd member a (client URL)", "127.0.0.1:2379"),
        ("the mesh's etcd member b (peer URL)", "[fd00::2]:2380"),
        ("the mesh's etcd member b (client URL)", "etcd-b.example:443"),
    ]


def test_unix_socket_urls_are_left_out() -> None:
    member = Member("a", ("unix:///run/etcd-peer",), ("unixs://etcd.sock:0", "http://h:80"))
    assert member_endpoints([member]) == [("the mesh's etcd member a (client URL)", "h:80")]
