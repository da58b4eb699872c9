"""Netblock rules and the addresses a network holds (other-apis §1.2, §1.10)."""

from __future__ import annotations

import ipaddress

import pytest

from services.api.networks import ipam
from services.common import errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("192.168.200.1/24", "cannot parse netblock: 192.168.200.1/24 has host bits set"),
        (
            "garbage",
            "cannot parse netblock: 'garbage' does not appear to be an IPv4 or IPv6 network",
        ),
        (
            "10.0.0.0/33",
            "cannot parse netblock: '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network",
        ),
        ("10.0.0.0/30", "network is below minimum size of /29"),
        ("10.0.0.1", "network is below minimum size of /29"),
        ("fd00::/64", "only IPv4 netblocks are supported"),
    ],
)
def test_refused_netblocks(text: str, message: str) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        ipam.parse_netblock(text)
    assert refused.value.message == message


@pytest.mark.parametrize("text", ["10.0.0.0/24", "10.0.0.0/29", "10.0.0.0/255.255.255.0"])
def test_accepted_netblocks(text: str) -> None:
    assert ipam.parse_netblock(text).network_address == ipaddress.IPv4Address("10.0.0.0")


def test_a_network_holds_its_network_gateway_and_broadcast_addresses() -> None:
    assert ipam.held_by_network(ipaddress.IPv4Network("10.1.2.0/24")) == [
        ("10.1.2.0", "network"),
        ("10.1.2.1", "gateway"),
        ("10.1.2.255", "broadcast"),
    ]
    assert ipam.held_by_network(ipaddress.IPv4Network("10.9.0.8/29"))[2] == (
        "10.9.0.15",
        "broadcast",
    )
