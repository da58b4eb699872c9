"""services/node_agent/fetch_policy.py: refused ranges, IPv6 and the IPv4
addresses it wraps, allowed networks, and the mesh's endpoints, refused
whatever is allowed."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from services.node_agent.fetch_policy import (
    Endpoint,
    FetchPolicy,
    parse_networks,
    refusal,
    unwrap,
)

NOTHING_ALLOWED = FetchPolicy()
EVERYTHING = (ip_network("0.0.0.0/0"), ip_network("::/0"))


def endpoint(name: str, address: str, *, local: bool = False) -> Endpoint:
    host, _, port = address.rpartition(":")
    return Endpoint(name, address, int(port), frozenset({ip_address(host.strip("[]"))}), local)


ETCD = endpoint("the mesh's etcd", "127.0.0.1:13379")
MAPPED = ip_address("::ffff:127.0.0.1")
"""As Python prints it (::ffff:7f00:1 before 3.13)."""


def refused(
    policy: FetchPolicy, address: str, port: int = 80, *, local: bool = False
) -> str | None:
    return refusal(policy, ip_address(address), port, local=local)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "127.0.0.1 is in 127.0.0.0/8 (loopback)"),
        ("127.200.0.9", "127.200.0.9 is in 127.0.0.0/8 (loopback)"),
        ("10.1.2.3", "10.1.2.3 is in 10.0.0.0/8 (private)"),
        ("172.31.255.255", "172.31.255.255 is in 172.16.0.0/12 (private)"),
        ("192.168.1.1", "192.168.1.1 is in 192.168.0.0/16 (private)"),
        ("100.64.0.1", "100.64.0.1 is in 100.64.0.0/10 (shared address space (CGNAT))"),
        ("169.254.169.254", "169.254.169.254 is in 169.254.0.0/16 (link-local)"),
        ("0.0.0.0", "0.0.0.0 is in 0.0.0.0/8 (unspecified (this network))"),
        ("224.0.0.1", "224.0.0.1 is in 224.0.0.0/4 (multicast)"),
        ("240.0.0.1", "240.0.0.1 is in 240.0.0.0/4 (reserved)"),
        ("255.255.255.255", "255.255.255.255 is in 240.0.0.0/4 (reserved)"),
        ("198.18.0.1", "198.18.0.1 is in 198.18.0.0/15 (reserved (benchmarking))"),
        ("::1", "::1 is in ::1/128 (loopback)"),
        ("::", ":: is in ::/128 (unspecified)"),
        ("::7f00:1", "::7f00:1 is in ::/8 (reserved)"),
        ("fe80::1", "fe80::1 is in fe80::/10 (link-local)"),
        ("fd12:3456::1", "fd12:3456::1 is in fc00::/7 (private (unique local))"),
        ("fc00::1", "fc00::1 is in fc00::/7 (private (unique local))"),
        ("ff02::1", "ff02::1 is in ff00::/8 (multicast)"),
        ("2001:db8::1", "2001:db8::1 is in 2001:db8::/32 (reserved (documentation))"),
    ],
)
def test_special_ranges_are_refused(address: str, why: str) -> None:
    assert refused(NOTHING_ALLOWED, address) == f"{why}, not an allowed image network"


@pytest.mark.parametrize(
    ("address", "stands_for", "network"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1", "127.0.0.0/8"),
        ("::ffff:10.0.0.1", "10.0.0.1", "10.0.0.0/8"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254", "169.254.0.0/16"),
        ("2002:c0a8:101::1", "192.168.1.1", "192.168.0.0/16"),
    ],
    ids=["mapped-loopback", "mapped-private", "nat64", "6to4"],
)
def test_ipv6_wrapping_an_ipv4_address_is_judged_as_it(
    address: str, stands_for: str, network: str
) -> None:
    assert unwrap(ip_address(address)) == ip_address(stands_for)
    why = refused(NOTHING_ALLOWED, address)
    assert why is not None
    assert why.startswith(f"{ip_address(address)} ({stands_for}) is in {network} (")


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert refused(NOTHING_ALLOWED, address) is None


def test_allowed_networks_lift_only_their_ranges() -> None:
    policy = FetchPolicy(allowed=parse_networks("127.0.0.0/8,fd00::/8"))
    assert refused(policy, "127.0.0.1") is None
    assert refused(policy, "127.4.5.6") is None
    assert refused(policy, "::ffff:127.0.0.1") is None
    assert refused(policy, "fd00::5") is None
    assert refused(policy, "10.0.0.1") is not None
    assert refused(policy, "::1") is not None
    assert refused(policy, "fc00::1") is not None


@pytest.mark.parametrize(
    ("address", "port", "local", "why"),
    [
        ("127.0.0.1", 13379, False, "127.0.0.1:13379 is the mesh's etcd"),
        ("::ffff:127.0.0.1", 13379, False, f"[{MAPPED}]:13379 is the mesh's etcd"),
        (
            "127.0.0.2",
            13379,
            False,
            "127.0.0.2:13379 is on this host, as is the mesh's etcd (127.0.0.1:13379)",
        ),
        ("::1", 13379, False, "[::1]:13379 is on this host, as is the mesh's etcd"),
        ("0.0.0.0", 13379, False, "0.0.0.0:13379 is on this host, as is the mesh's etcd"),
        ("192.168.7.7", 13379, True, "192.168.7.7:13379 is on this host, as is the mesh's etcd"),
        ("192.168.7.7", 13379, False, None),
        ("127.0.0.1", 13380, False, None),
    ],
)
def test_mesh_endpoints_are_refused_even_when_everything_is_allowed(
    address: str, port: int, local: bool, why: str | None
) -> None:
    policy = FetchPolicy(allowed=EVERYTHING, endpoints=(ETCD,))
    found = refused(policy, address, port, local=local)
    if why is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(why)


def test_a_listener_on_every_address_is_refused_at_each_address_of_this_host() -> None:
    agent = endpoint("this node agent", "0.0.0.0:13020")
    policy = FetchPolicy(allowed=EVERYTHING, endpoints=(agent,))
    assert refused(policy, "127.0.0.1", 13020) is not None
    assert refused(policy, "10.1.1.1", 13020, local=True) is not None
    assert refused(policy, "10.1.1.1", 13020) is None


def test_an_endpoint_on_a_local_interface_is_refused_on_loopback_too() -> None:
    api = endpoint("the mesh's api", "192.168.7.7:13010", local=True)
    policy = FetchPolicy(allowed=EVERYTHING, endpoints=(api,))
    assert refused(policy, "127.0.0.1", 13010) == (
        "127.0.0.1:13010 is on this host, as is the mesh's api (192.168.7.7:13010)"
    )


def test_a_remote_endpoint_is_refused_only_at_its_own_addresses() -> None:
    etcd = endpoint("the mesh's etcd", "10.0.0.7:2379")
    policy = FetchPolicy(allowed=EVERYTHING, endpoints=(etcd,))
    assert refused(policy, "10.0.0.7", 2379) == "10.0.0.7:2379 is the mesh's etcd"
    assert refused(policy, "::ffff:10.0.0.7", 2379) is not None
    assert refused(policy, "10.0.0.8", 2379) is None
    assert refused(policy, "127.0.0.1", 2379) is None


def test_endpoints_are_refused_before_ranges_are_looked_at() -> None:
    policy = FetchPolicy(endpoints=(ETCD,))
    assert refused(policy, "127.0.0.1", 13379) == "127.0.0.1:13379 is the mesh's etcd"


def test_parse_networks() -> None:
    assert parse_networks("") == ()
    assert parse_networks(" 127.0.0.0/8 , fd00::/8,") == (
        ip_network("127.0.0.0/8"),
        ip_network("fd00::/8"),
    )
    for bad in ("10.0.0.1/8", "nonsense", "10.0.0.0/33"):
        with pytest.raises(ValueError):
            parse_networks(bad)
