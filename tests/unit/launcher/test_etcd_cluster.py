"""launcher/etcd_cluster.py: a host's etcd member of a cluster, and
`mesh.etcd` as several endpoints."""

from __future__ import annotations

from typing import Any

import pytest

from launcher.addresses import Address
from launcher.commands import command
from launcher.config import ConfigError, parse_config

CLUSTER = {"cp1": "10.0.0.1:13380", "cp2": "10.0.0.2:13380", "cp3": "10.0.0.3:13380"}
ENDPOINTS = ["10.0.0.1:13379", "10.0.0.2:13379", "10.0.0.3:13379"]


def member(etcd: dict[str, Any], mesh: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document of host cp2 (10.0.0.2) running etcd, the eventlog and the scheduler."""
    return {
        "host": {"name": "cp2", "address": "10.0.0.2", "roles": ["etcd", "eventlog", "scheduler"]},
        "etcd": etcd,
        "mesh": {"etcd": ENDPOINTS} if mesh is None else mesh,
    }


def problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(document, hostname="here")
    return raised.value.problems


def test_a_member_of_a_new_cluster_starts_with_every_member() -> None:
    config = parse_config(member({"initial_cluster": CLUSTER}), hostname="x")
    argv = command(config, "etcd")
    assert "--name=cp2" in argv
    assert "--initial-advertise-peer-urls=http://10.0.0.2:13380" in argv
    assert (
        "--initial-cluster=cp1=http://10.0.0.1:13380,cp2=http://10.0.0.2:13380,"
        "cp3=http://10.0.0.3:13380"
    ) in argv
    assert "--initial-cluster-state=new" in argv


def test_a_member_joining_a_running_cluster_says_existing() -> None:
    config = parse_config(
        member({"initial_cluster": CLUSTER, "cluster_state": "existing"}), hostname="x"
    )
    assert "--initial-cluster-state=existing" in command(config, "etcd")


def test_services_are_given_every_endpoint_in_order() -> None:
    config = parse_config(member({"initial_cluster": CLUSTER}), hostname="x")
    assert config.mesh.etcd == tuple(Address(f"10.0.0.{n}", 13379) for n in (1, 2, 3))
    argv = command(config, "eventlog")
    assert f"--etcd={','.join(ENDPOINTS)}" in argv


def test_a_lone_member_is_a_cluster_of_itself() -> None:
    config = parse_config(member({}, mesh={}), hostname="x")
    assert config.mesh.etcd == (Address("10.0.0.2", 13379),)
    assert "--initial-cluster=cp2=http://10.0.0.2:13380" in command(config, "etcd")


@pytest.mark.parametrize(
    ("etcd", "mesh", "expected"),
    [
        (
            {"initial_cluster": CLUSTER},
            {},
            "mesh.etcd: required with a cluster of 3 members: list each member's client"
            " endpoint, so that services fail over when one dies",
        ),
        (
            {"initial_cluster": {"cp1": "10.0.0.1:13380"}},
            None,
            "etcd.initial_cluster: this host's member 'cp2' (host.name) is not listed;"
            ' add cp2 = "10.0.0.2:13380"',
        ),
        (
            {"initial_cluster": {**CLUSTER, "cp2": "10.0.0.9:13380"}},
            None,
            "etcd.initial_cluster.cp2: 10.0.0.9:13380 is not where this member's peers reach"
            " it (10.0.0.2:13380, from etcd.peer and host.address)",
        ),
        (
            {"initial_cluster": {**CLUSTER, "cp3": "10.0.0.1:13380"}},
            None,
            "etcd.initial_cluster: two members share the peer address 10.0.0.1:13380",
        ),
        (
            {"initial_cluster": {**CLUSTER, "cp 4": "10.0.0.4:13380"}},
            None,
            "etcd.initial_cluster: 'cp 4' is not a name (letters, digits, '.', '_', '-')",
        ),
        (
            {"initial_cluster": {**CLUSTER, "cp4": "10.0.0.4"}},
            None,
            "etcd.initial_cluster.cp4: '10.0.0.4' is not host:port",
        ),
        (
            {"initial_cluster": ["cp1=http://10.0.0.1:13380"]},
            None,
            "etcd.initial_cluster: a table of every member's name and peer address,"
            ' e.g. { cp1 = "10.0.0.1:13380", cp2 = "10.0.0.2:13380" }',
        ),
        (
            {"initial_cluster": CLUSTER, "cluster_state": "joining"},
            None,
            "etcd.cluster_state: 'joining': 'new' (making the cluster) or 'existing'"
            " (joining one that runs)",
        ),
        (
            {"cluster_state": "existing"},
            None,
            "etcd.cluster_state: 'existing' needs etcd.initial_cluster, the members this one joins",
        ),
        (
            {"initial_cluster": CLUSTER},
            {"etcd": [*ENDPOINTS, "10.0.0.1:13379"]},
            "mesh.etcd: 10.0.0.1:13379 is listed twice",
        ),
    ],
)
def test_a_bad_cluster_is_refused_naming_its_key(
    etcd: dict[str, Any], mesh: dict[str, Any] | None, expected: str
) -> None:
    assert problems(member(etcd, mesh)) == [expected]
