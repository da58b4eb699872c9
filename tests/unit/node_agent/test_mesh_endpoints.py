"""services/node_agent/mesh_endpoints.py, its pure part: etcd members'
URLs as endpoints."""

from __future__ import annotations

from services.common.store import Member
from services.node_agent.mesh_endpoints import member_endpoints


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
