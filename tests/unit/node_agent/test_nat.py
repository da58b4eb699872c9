"""services/node_agent/nat.py's pure part: the namespace's nftables table."""

from __future__ import annotations

import ipaddress

from services.node_agent.nat import Egress, ruleset

BLOCK = ipaddress.IPv4Network("10.250.0.0/24")


def test_the_table_masquerades_the_block_and_lets_only_replies_in() -> None:
    rules = ruleset(BLOCK, "sfi1", "sfr1")
    assert rules.startswith("table ip sfmesh\ndelete table ip sfmesh\n")  # replaced whole
    assert 'oifname "sfr1" ip saddr 10.250.0.0/24 masquerade' in rules
    assert "policy drop;" in rules
    assert "ct state established,related accept" in rules
    assert 'iifname "sfi1" oifname "sfr1" accept' in rules
    assert "dnat to" not in rules and "snat to" not in rules


def test_floats_map_both_ways_before_the_masquerade() -> None:
    rules = ruleset(BLOCK, "sfi1", "sfr1", {"10.254.0.9": "10.250.0.5", "10.254.0.3": "10.250.0.7"})
    assert (
        "ip daddr 10.254.0.3 dnat to 10.250.0.7\n    ip daddr 10.254.0.9 dnat to 10.250.0.5"
        in rules
    )
    snat = rules.index('oifname "sfr1" ip saddr 10.250.0.5 snat to 10.254.0.9')
    assert snat < rules.index("masquerade")
    assert 'iifname "sfr1" oifname "sfi1" ct status dnat accept' in rules


def test_the_router_is_the_pools_first_host() -> None:
    assert str(Egress("br0", ipaddress.IPv4Network("192.0.2.0/24")).router) == "192.0.2.1"
