"""JSON rendering of responses in the sfmesh dialect."""

from __future__ import annotations

import orjson
from google.protobuf import duration_pb2, empty_pb2, struct_pb2
from sfmesh.v1 import event_pb2, instance_pb2, instance_service_pb2

from services.api_gateway.marshal import to_json_bytes, to_json_value


def test_instance_with_unset_optionals() -> None:
    rendered = to_json_value(instance_pb2.Instance(uuid="u", cpus=1))
    assert list(rendered)[:4] == ["uuid", "state", "metadata", "version"]
    assert rendered["uuid"] == "u"
    assert rendered["ssh_key"] is None
    assert rendered["node"] is None
    assert rendered["console_port"] is None
    assert rendered["metadata"] is None
    assert rendered["video"] is None
    assert rendered["state"] is None
    assert rendered["power_state"] is None
    assert rendered["memory"] == 0 and rendered["uefi"] is False
    assert rendered["disk_spec"] == [] and rendered["interfaces"] == []
    assert "requested_placement" not in rendered


def test_every_field_in_number_order() -> None:
    """Fields always present come in number order; one left out while unset
    comes after them when set."""
    rendered = to_json_value(instance_pb2.Instance(requested_placement="n1"))
    by_name = {f.name: f.number for f in instance_pb2.Instance.DESCRIPTOR.fields}
    always = sorted(n for name, n in by_name.items() if name != "requested_placement")
    assert [by_name[k] for k in rendered] == [*always, by_name["requested_placement"]]
    assert rendered["requested_placement"] == "n1"


def test_enums_render_wire_strings() -> None:
    instance = instance_pb2.Instance(
        state=instance_pb2.INSTANCE_STATE_DELETE_WAIT,
        power_state=instance_pb2.POWER_STATE_TRANSITION_TO_ON,
        disk_spec=[instance_pb2.DiskSpec(bus=instance_pb2.DISK_BUS_NVME, size=8)],
    )
    rendered = to_json_value(instance)
    assert rendered["state"] == "delete-wait"
    assert rendered["power_state"] == "transition-to-on"
    assert rendered["disk_spec"] == [{"size": 8, "base": None, "bus": "nvme", "type": None}]


def test_struct_numbers_render_as_ints_when_integral() -> None:
    metadata = struct_pb2.Struct()
    metadata.update({"n": 10, "f": 1.5, "list": [1, 2.0, "x", None, True], "obj": {"a": 3}})
    rendered = to_json_value(instance_pb2.Instance(metadata=metadata))["metadata"]
    assert rendered == {"n": 10, "f": 1.5, "list": [1, 2, "x", None, True], "obj": {"a": 3}}
    assert b'"n":10' in to_json_bytes(instance_pb2.Instance(metadata=metadata))


def test_response_body_answers_a_bare_list() -> None:
    response = instance_service_pb2.ListInstancesResponse(
        instances=[instance_pb2.Instance(uuid="a"), instance_pb2.Instance(uuid="b")]
    )
    rendered = orjson.loads(to_json_bytes(response, "instances"))
    assert [i["uuid"] for i in rendered] == ["a", "b"]
    empty = instance_service_pb2.ListInstancesResponse()
    assert to_json_bytes(empty, "instances") == b"[]"
    uuids = instance_service_pb2.DeleteAllInstancesResponse(uuids=["x"])
    assert to_json_bytes(uuids, "uuids") == b'["x"]'


def test_response_body_struct_answers_the_object() -> None:
    response = instance_service_pb2.GetInstanceMetadataResponse()
    response.metadata.update({"k": "v"})
    assert to_json_bytes(response, "metadata") == b'{"k":"v"}'


def test_empty_renders_null() -> None:
    assert to_json_bytes(empty_pb2.Empty()) == b"null"


def test_doubles_and_nested_events() -> None:
    event = event_pb2.Event(type=event_pb2.EVENT_TYPE_AUDIT, timestamp=1700000000.25, message="m")
    rendered = to_json_value(event)
    assert rendered == {
        "type": "audit",
        "timestamp": 1700000000.25,
        "fqdn": None,
        "duration": None,
        "message": "m",
        "extra": None,
    }


def test_duration_renders_like_protojson() -> None:
    assert to_json_value(duration_pb2.Duration(seconds=4)) == "4s"
    assert to_json_value(duration_pb2.Duration(seconds=1, nanos=500000000)) == "1.5s"
