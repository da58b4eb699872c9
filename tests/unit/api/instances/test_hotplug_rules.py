"""services/api/instances/hotplug_rules.py: which instances take a NIC now
and what each refusal says; the request's own checks; a NIC's place; what
a withdrawal takes back. Pure."""

from __future__ import annotations

import pytest
from sfmesh.v1 import instance_pb2, instance_service_pb2, records_pb2

from services.api.instances import hotplug_rules as rules
from services.common import errors
from services.common import instance_states as states
from services.common.addresses import FLOATING, address_key, mac_key

Power = instance_pb2.PowerState


def instance(
    state: int = states.CREATED, power: int = Power.POWER_STATE_ON
) -> instance_pb2.Instance:
    made = instance_pb2.Instance(uuid="i-1", state=state, power_state=power)  # type: ignore[arg-type]
    made.interfaces.add(uuid="n-0", network_uuid="net-a", macaddr="02:00:00:00:00:01", order=0)
    made.interfaces.add(uuid="n-1", network_uuid="net-b", macaddr="02:00:00:00:00:02", order=3)
    return made


def test_a_running_created_instance_takes_a_nic() -> None:
    rules.check_pluggable(instance())


@pytest.mark.parametrize(
    ("state", "power", "kind", "message"),
    [
        (states.DELETED, Power.POWER_STATE_OFF, errors.NotFound, "instance not found"),
        (
            states.INITIAL,
            Power.POWER_STATE_INITIAL,
            errors.NotReady,
            "instance i-1 is not ready (initial)",
        ),
        (
            states.PREFLIGHT,
            Power.POWER_STATE_INITIAL,
            errors.NotReady,
            "instance i-1 is not ready (preflight)",
        ),
        (
            states.CREATING,
            Power.POWER_STATE_INITIAL,
            errors.NotReady,
            "instance i-1 is not ready (creating)",
        ),
        (
            states.CREATED,
            Power.POWER_STATE_TRANSITION_TO_OFF,
            errors.NotReady,
            "instance i-1 is not ready (power state transition-to-off)",
        ),
        (
            states.CREATED,
            Power.POWER_STATE_UNSPECIFIED,
            errors.NotReady,
            "instance i-1 is not ready (power state unknown)",
        ),
        (
            states.CREATED,
            Power.POWER_STATE_OFF,
            errors.Conflict,
            "instance i-1 is powered off: power it on to add an interface",
        ),
        (
            states.CREATED,
            Power.POWER_STATE_PAUSED,
            errors.Conflict,
            "instance i-1 is paused: unpause it to add an interface",
        ),
        (
            states.CREATED,
            Power.POWER_STATE_CRASHED,
            errors.Conflict,
            "instance i-1 has crashed: power it on to add an interface",
        ),
        (
            states.DELETE_WAIT,
            Power.POWER_STATE_ON,
            errors.Conflict,
            "instance i-1 is delete-wait: interfaces cannot be added to it",
        ),
        (
            states.CREATED_ERROR,
            Power.POWER_STATE_ON,
            errors.Conflict,
            "instance i-1 is created-error: interfaces cannot be added to it",
        ),
        (
            states.ERROR,
            Power.POWER_STATE_OFF,
            errors.Conflict,
            "instance i-1 is error: interfaces cannot be added to it",
        ),
    ],
)
def test_instances_that_cannot_take_a_nic_now(
    state: int, power: int, kind: type[errors.SfmeshError], message: str
) -> None:
    with pytest.raises(kind) as refused:
        rules.check_pluggable(instance(state, power))
    assert refused.value.message == message
    assert type(refused.value) is kind  # 406 only for what passes by itself
    if kind is errors.Conflict:
        assert refused.value.reason == "INSTANCE_NOT_RUNNING"


def test_the_request_needs_a_networkspec_with_a_network_and_a_unicast_mac() -> None:
    Request = instance_service_pb2.AddInstanceInterfaceRequest
    spec = instance_pb2.NetworkSpec(network_uuid="net-a", macaddress="02:00:00:00:00:09")
    assert rules.checked_spec(Request(ref="i-1", network=spec)) == spec
    for request, message in (
        (Request(ref="i-1"), "network is required: the interface's networkspec"),
        (
            Request(ref="i-1", network=instance_pb2.NetworkSpec()),
            "network specification is missing network_uuid",
        ),
        (
            Request(
                ref="i-1",
                network=instance_pb2.NetworkSpec(network_uuid="n", macaddress="01:00:00:00:00:00"),
            ),
            "'01:00:00:00:00:00' is not a unicast MAC address",
        ),
    ):
        with pytest.raises(errors.InvalidArgument) as refused:
            rules.checked_spec(request)
        assert refused.value.message == message


def test_the_next_nic_comes_after_the_last() -> None:
    assert rules.next_order(instance()) == 4
    assert rules.next_order(instance_pb2.Instance()) == 0


def test_a_mac_is_unique_on_its_instance() -> None:
    rules.check_mac_unused(instance(), "02:00:00:00:00:03")
    with pytest.raises(errors.Conflict) as refused:
        rules.check_mac_unused(instance(), "02:00:00:00:00:02")
    assert refused.value.reason == "MAC_IN_USE"


def test_a_nic_is_added_and_withdrawn_on_copies() -> None:
    record = records_pb2.InstanceRecord(instance=instance())
    nic = instance_pb2.Interface(uuid="n-2", network_uuid="net-b", macaddr="02:00:00:00:00:03")
    added = rules.with_nic(record, nic)
    assert [n.uuid for n in added.instance.interfaces] == ["n-0", "n-1", "n-2"]
    assert len(record.instance.interfaces) == 2
    assert rules.find_nic(added.instance, "n-2") == nic
    assert rules.find_nic(record.instance, "n-2") is None
    withdrawn = rules.without_nic(added, "n-2")
    assert withdrawn == record
    assert len(added.instance.interfaces) == 3


def test_a_withdrawal_gives_back_what_the_nic_holds() -> None:
    nic = instance_pb2.Interface(
        uuid="n-2", network_uuid="net-b", macaddr="02:00:00:00:00:03", ipv4="10.0.0.5"
    )
    assert [(h.key, h.user) for h in rules.held_by_nic("i-1", nic)] == [
        (mac_key("net-b", "02:00:00:00:00:03"), ("instance", "i-1")),
        (address_key("net-b", "10.0.0.5"), ("instance", "i-1")),
    ]
    nic.floating = "192.0.2.9"
    assert rules.held_by_nic("i-1", nic)[-1].key == address_key(FLOATING, "192.0.2.9")
    assert rules.held_by_nic("i-1", nic)[-1].user == ("networkinterface", "n-2")


@pytest.mark.parametrize(
    ("state", "withdrawn"),
    [
        (instance_pb2.INTERFACE_STATE_INITIAL, True),
        (instance_pb2.INTERFACE_STATE_ERROR, True),
        (instance_pb2.INTERFACE_STATE_CREATED, False),
        (instance_pb2.INTERFACE_STATE_DELETED, False),
    ],
)
def test_only_unplugged_nics_are_withdrawn(state: int, withdrawn: bool) -> None:
    assert rules.withdrawable(instance_pb2.Interface(state=state)) is withdrawn  # type: ignore[arg-type]
    assert rules.withdrawable(None) is False
