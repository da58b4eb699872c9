"""Request transcoding against the real InstanceService rules."""

from __future__ import annotations

import orjson
import pytest
from google.protobuf.message import Message
from sfmesh.v1 import event_pb2, instance_pb2, instance_service_pb2

from services.api_gateway.errors import GatewayError
from services.api_gateway.routes import RouteMatch, build_routes
from services.api_gateway.transcode import RequestParts, build_request

SERVICE = instance_service_pb2.DESCRIPTOR.services_by_name["InstanceService"]
TABLE = build_routes([SERVICE])


def _build(
    method: str,
    path: str,
    body: object = None,
    *,
    query: str = "",
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Message:
    found = TABLE.lookup(method, path)
    assert isinstance(found, RouteMatch)
    payload = raw if raw is not None else (b"" if body is None else orjson.dumps(body))
    parts = RequestParts(found.path_params, query, payload, headers or {})
    return build_request(found.route, parts)


def _error(*args: object, **kwargs: object) -> str:
    with pytest.raises(GatewayError) as caught:
        _build(*args, **kwargs)  # type: ignore[arg-type]
    assert caught.value.http_status == 400
    return caught.value.message


def test_path_variables_fill_fields() -> None:
    message = _build("PUT", "/instances/vm/metadata/k", {"value": [1, "a"]})
    assert isinstance(message, instance_service_pb2.SetInstanceMetadataRequest)
    assert (message.ref, message.key) == ("vm", "k")
    assert list(message.value.list_value.values)[1].string_value == "a"


def test_body_on_get_and_delete() -> None:
    listing = _build("GET", "/instances", {"all": True})
    assert listing.all is True  # type: ignore[attr-defined]
    deleting = _build("DELETE", "/instances/vm", {"namespace": "ns"})
    assert deleting.HasField("namespace") and deleting.namespace == "ns"  # type: ignore[attr-defined]


def test_query_string_rules() -> None:
    events = _build("GET", "/instances/vm/events", query="event_type=audit&limit=5")
    assert events.event_type == event_pb2.EVENT_TYPE_AUDIT  # type: ignore[attr-defined]
    assert events.limit == 5  # type: ignore[attr-defined]
    by_name = _build("GET", "/instances/vm/events", query="event_type=EVENT_TYPE_STATUS")
    assert by_name.event_type == event_pb2.EVENT_TYPE_STATUS  # type: ignore[attr-defined]
    by_number = _build("GET", "/instances/vm/events", query="event_type=2")
    assert by_number.event_type == event_pb2.EVENT_TYPE_MUTATE  # type: ignore[attr-defined]
    assert _build("GET", "/instances", query="all=true").all is True  # type: ignore[attr-defined]
    nested = _build("POST", "/instances", query="video.model=vga&video.memory=8")
    assert nested.video.model == instance_pb2.VIDEO_MODEL_VGA  # type: ignore[attr-defined]
    assert "twice" in _error("GET", "/instances", query="all=true&all=false")
    assert '"nope"' in _error("GET", "/instances", query="nope=1")
    assert '"all"' in _error("GET", "/instances", query="all=maybe")


def test_field_in_two_places_is_refused() -> None:
    assert _error("GET", "/instances/vm", {"ref": "other"}) == (
        'field "ref" is given twice (path and body)'
    )
    message = _error("GET", "/instances", {"all": True}, query="all=true")
    assert message == 'field "all" is given twice (query and body)'
    assert "video.model" in _error(
        "POST", "/instances", {"video": {"model": "vga"}}, query="video.model=qxl"
    )


def test_unknown_and_camel_case_keys_are_refused() -> None:
    assert _error("POST", "/instances", {"colour": "red"}) == 'unknown field "colour"'
    assert _error("POST", "/instances", {"sshKey": "k"}) == 'unknown field "sshKey"'
    assert _error("POST", "/instances", {"disk": [{"size": 1}, {"sizeGb": 2}]}) == (
        'unknown field "disk[1].sizeGb"'
    )


def test_enums_by_wire_string_and_proto_name() -> None:
    message = _build(
        "POST",
        "/instances",
        {"disk": [{"bus": "nvme", "type": "DISK_TYPE_CDROM"}], "configdrive": "none"},
    )
    disk = message.disk[0]  # type: ignore[attr-defined]
    assert disk.bus == instance_pb2.DISK_BUS_NVME
    assert disk.type == instance_pb2.DISK_TYPE_CDROM
    assert message.configdrive == instance_pb2.CONFIG_DRIVE_NONE  # type: ignore[attr-defined]
    assert _error("POST", "/instances", {"disk": [{"bus": "floppy"}]}).startswith(
        'field "disk[0].bus"'
    )


def test_numeric_strings_and_ranges() -> None:
    message = _build("POST", "/instances", {"cpus": "5", "memory": 1024.0, "disk": [{"size": "8"}]})
    assert (message.cpus, message.memory) == (5, 1024)  # type: ignore[attr-defined]
    assert message.disk[0].size == 8  # type: ignore[attr-defined]
    assert _error("POST", "/instances", {"cpus": "abc"}).startswith('field "cpus"')
    assert _error("POST", "/instances", {"cpus": 2**31}).startswith('field "cpus"')
    assert _error("POST", "/instances", {"cpus": True}).startswith('field "cpus"')
    assert _error("POST", "/instances", {"cpus": 1.5}).startswith('field "cpus"')


def test_non_ascii_digits_are_refused_not_crashed_on() -> None:
    # "³".isdigit() holds but int("³") raises: both paths must answer 400.
    for digits in ("³", "٣", "1³"):
        assert _error("GET", "/instances/x/events", query=f"event_type={digits}").startswith(
            'field "event_type"'
        )
        assert _error("POST", "/instances", {"cpus": digits}).startswith('field "cpus"')
    # Past 4,300 digits int() raises: still a 400, never a 500.
    many = "1" * 5000
    assert _error("GET", "/instances/x/events", query=f"limit={many}").startswith('field "limit"')
    assert _error("GET", "/instances/x/events", query=f"event_type={many}").startswith(
        'field "event_type"'
    )
    assert _build("GET", "/instances/x/events", query="event_type=1").event_type == 1  # type: ignore[attr-defined]


def test_null_means_not_given() -> None:
    message = _build(
        "POST",
        "/instances",
        {"name": "vm", "ssh_key": None, "placed_on": None, "video": None, "disk": [{"bus": None}]},
    )
    assert not message.HasField("ssh_key")
    assert not message.HasField("placed_on")
    assert not message.HasField("video")
    assert message.disk[0].bus == 0  # type: ignore[attr-defined]


def test_optional_fields_get_presence() -> None:
    message = _build("POST", "/instances", {"ssh_key": "", "disk": [{"size": 0}]})
    assert message.HasField("ssh_key")
    assert message.disk[0].HasField("size")  # type: ignore[attr-defined]


def test_struct_value_and_list_value_take_any_json() -> None:
    body = {"metadata": {"tags": ["a"], "n": 1, "deep": {"x": None}}, "side_channels": []}
    message = _build("POST", "/instances", body)
    metadata = message.metadata  # type: ignore[attr-defined]
    assert metadata["tags"][0] == "a" and metadata["n"] == 1
    assert message.HasField("side_channels")
    assert _error("POST", "/instances", {"metadata": [1]}).startswith('field "metadata"')
    assert _error("POST", "/instances", {"side_channels": "sf-agent"}).startswith(
        'field "side_channels"'
    )


def test_body_shapes() -> None:
    assert _build("GET", "/instances", raw=b"  ").all is False  # type: ignore[attr-defined]
    assert _build("GET", "/instances", raw=b"null").all is False  # type: ignore[attr-defined]
    assert _error("GET", "/instances", raw=b"[1, 2]") == "request body must be a JSON object"
    assert _error("GET", "/instances", raw=b"{nope") == "request body is not valid JSON"
    assert _error("POST", "/instances", {"disk": {"size": 1}}) == (
        'field "disk" must be a JSON array'
    )
    assert _error("POST", "/instances", {"video": 5}) == 'field "video" must be a JSON object'


def test_header_fills_field() -> None:
    message = _build("POST", "/instances", {"name": "vm"}, headers={"idempotency-key": "k1"})
    assert message.idempotency_key == "k1"  # type: ignore[attr-defined]
    assert "idempotency_key" in _error(
        "POST", "/instances", {"idempotency_key": "a"}, headers={"idempotency-key": "b"}
    )


def test_access_token_is_taken_out_of_the_query() -> None:
    from services.api_gateway.transcode import split_access_token

    assert split_access_token("all=true&access_token=a%2Bb&x=1") == ("all=true&x=1", "a+b")
    assert split_access_token("all=true") == ("all=true", None)
    assert split_access_token("access_token=") == ("", "")
