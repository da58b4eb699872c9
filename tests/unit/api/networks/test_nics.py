"""services/api/networks/nics.py's pure parts: MACs and what an instance holds."""

from __future__ import annotations

import random

import pytest
from sfmesh.v1 import instance_pb2

from services.api.networks.nics import held_addresses, network_ref, pick_mac
from services.common import errors
from services.common.addresses import address_key, mac_key


def test_a_spec_names_its_network() -> None:
    assert network_ref(instance_pb2.NetworkSpec(network_uuid="backend")) == "backend"
    with pytest.raises(errors.InvalidArgument) as caught:
        network_ref(instance_pb2.NetworkSpec(address="10.0.0.5"))
    assert caught.value.message == "network specification is missing network_uuid"


def test_pick_mac_keeps_a_given_one_and_draws_around_taken_ones() -> None:
    given = instance_pb2.NetworkSpec(network_uuid="n", macaddress="52:54:00:AA:BB:CC")
    assert pick_mac(given, set(), random.Random(1)) == "52:54:00:aa:bb:cc"
    drawn = pick_mac(instance_pb2.NetworkSpec(network_uuid="n"), set(), random.Random(3))
    assert drawn.startswith("02:00:00:")
    again = pick_mac(instance_pb2.NetworkSpec(network_uuid="n"), {drawn}, random.Random(3))
    assert again != drawn and again.startswith("02:00:00:")


def test_an_instance_holds_its_macs_addresses_and_floating_addresses() -> None:
    instance = instance_pb2.Instance(uuid="i1")
    instance.interfaces.add(uuid="nic1", network_uuid="n1", macaddr="02:00:00:00:00:01")
    instance.interfaces.add(
        uuid="nic2", network_uuid="n2", macaddr="02:00:00:00:00:02", ipv4="10.0.0.5",
        floating="10.254.0.9",
    )  # fmt: skip
    assert [(h.key, h.network_uuid, h.user) for h in held_addresses(instance)] == [
        (mac_key("n1", "02:00:00:00:00:01"), "n1", ("instance", "i1")),
        (mac_key("n2", "02:00:00:00:00:02"), "n2", ("instance", "i1")),
        (address_key("n2", "10.0.0.5"), "n2", ("instance", "i1")),
        (address_key("floating", "10.254.0.9"), "floating", ("networkinterface", "nic2")),
    ]
