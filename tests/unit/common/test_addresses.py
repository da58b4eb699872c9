"""services/common/addresses.py: drawing free addresses and the pool setting."""

from __future__ import annotations

import ipaddress
import random

import pytest

from services.common import errors
from services.common.addresses import address_key, floating_pool, pick_free

BLOCK = ipaddress.IPv4Network("10.0.0.0/29")  # hosts .1 to .6


def test_pick_free_draws_hosts_only_and_scans_when_random_tries_miss() -> None:
    rng = random.Random(7)
    drawn = {pick_free(BLOCK, set(), rng) for _ in range(200)}
    assert drawn == {f"10.0.0.{i}" for i in range(1, 7)}
    taken = {f"10.0.0.{i}" for i in range(1, 6)}
    assert pick_free(BLOCK, taken, rng) == "10.0.0.6"


def test_pick_free_refuses_a_full_block() -> None:
    with pytest.raises(errors.InsufficientResources, match="No free addresses on network"):
        pick_free(BLOCK, {f"10.0.0.{i}" for i in range(1, 7)}, random.Random(1))


def test_address_keys() -> None:
    assert address_key("floating", "10.0.0.2") == b"/sfmesh/v1/address/floating/10.0.0.2"


def test_floating_pool_setting() -> None:
    assert floating_pool("") is None
    assert floating_pool("192.0.2.0/24") == ipaddress.IPv4Network("192.0.2.0/24")
    for bad in ("192.0.2.1/24", "nonsense", "fd00::/64", "192.0.2.0/30"):
        with pytest.raises(SystemExit):
            floating_pool(bad)
