"""services/api/networks/store.py's floating pool against a real etcd."""

from __future__ import annotations

import ipaddress
import random

import pytest

from services.api.networks.store import NetworkStore
from services.common import errors
from services.common.store import Store


async def test_a_mesh_without_a_pool_refuses_to_float_for_good(etcd: str) -> None:
    # No retry can succeed: 409 without a Retry-After, not 507.
    store = Store(etcd)
    try:
        with pytest.raises(errors.Conflict, match="this mesh has no floating pool") as refused:
            await NetworkStore(store).draw_floating(set(), random.Random(1))
        assert refused.value.reason == "NO_FLOATING_POOL"
        pool = NetworkStore(store, ipaddress.IPv4Network("10.253.77.0/29"))
        drawn = await pool.draw_floating(set(), random.Random(1))
        assert ipaddress.IPv4Address(drawn) in pool_hosts()
    finally:
        await store.close()


def pool_hosts() -> list[ipaddress.IPv4Address]:
    """The /29's hosts but its first, the router."""
    return list(ipaddress.IPv4Network("10.253.77.0/29").hosts())[1:]
