"""The route table built from the real InstanceService rules."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, empty_pb2
from grpc_health.v1 import health_pb2
from sfmesh.v1 import instance_service_pb2, transfer_service_pb2

from services.api_gateway.routes import (
    MethodNotAllowed,
    NoRoute,
    RouteError,
    RouteMatch,
    build_routes,
    capabilities,
)

SERVICE = instance_service_pb2.DESCRIPTOR.services_by_name["InstanceService"]
TABLE = build_routes([SERVICE])


def _rpc(http_method: str, path: str) -> str:
    found = TABLE.lookup(http_method, path)
    assert isinstance(found, RouteMatch), found
    return str(found.route.method.name)


def test_each_rule_routes_to_its_rpc() -> None:
    assert _rpc("GET", "/instances") == "ListInstances"
    assert _rpc("POST", "/instances") == "CreateInstance"
    assert _rpc("DELETE", "/instances") == "DeleteAllInstances"
    assert _rpc("GET", "/instances/vm") == "GetInstance"
    assert _rpc("DELETE", "/instances/vm") == "DeleteInstance"
    assert _rpc("POST", "/instances/vm/poweron") == "PowerOn"
    assert _rpc("GET", "/instances/vm/events") == "ListInstanceEvents"


def test_additional_bindings_are_routed() -> None:
    assert _rpc("POST", "/instances/vm/metadata") == "SetInstanceMetadata"
    assert _rpc("PUT", "/instances/vm/metadata/k") == "SetInstanceMetadata"
    assert _rpc("DELETE", "/instances/vm/metadata/k") == "DeleteInstanceMetadata"


def test_verbs_route_to_watches_only() -> None:
    assert _rpc("GET", "/instances:watch") == "WatchInstances"
    assert _rpc("GET", "/instances/vm:watch") == "WatchInstance"
    assert _rpc("GET", "/instances/vm/events:watch") == "WatchInstanceEvents"


def test_captures_and_route_details() -> None:
    found = TABLE.lookup("PUT", "/instances/vm/metadata/my%20key")
    assert isinstance(found, RouteMatch)
    assert found.path_params == {"ref": "vm", "key": "my key"}
    assert found.route.body == "*"
    assert found.route.rpc_path == "/sfmesh.v1.InstanceService/SetInstanceMetadata"
    listing = TABLE.lookup("GET", "/instances")
    assert isinstance(listing, RouteMatch)
    assert listing.route.response_body == "instances"
    watch = TABLE.lookup("GET", "/instances:watch")
    assert isinstance(watch, RouteMatch) and watch.route.server_streaming


def test_unknown_path_is_404() -> None:
    assert isinstance(TABLE.lookup("GET", "/nothing"), NoRoute)
    assert isinstance(TABLE.lookup("GET", "/instances/"), NoRoute)
    assert isinstance(TABLE.lookup("POST", "/instances/vm/vdiconsoleproxy"), NoRoute)


def test_other_method_is_405_with_allow() -> None:
    found = TABLE.lookup("PUT", "/instances")
    assert found == MethodNotAllowed(("DELETE", "GET", "POST"))
    assert TABLE.lookup("POST", "/instances/vm:watch") == MethodNotAllowed(("GET",))
    assert TABLE.lookup("GET", "/instances/vm/poweron") == MethodNotAllowed(("POST",))


def _service_with_two_methods(first: str, second: str) -> object:
    file = descriptor_pb2.FileDescriptorProto(
        name="dup/dup.proto", package="dup", dependency=["google/protobuf/empty.proto"]
    )
    service = file.service.add(name="Dup")
    for name, path in (("A", first), ("B", second)):
        method = service.method.add(
            name=name, input_type=".google.protobuf.Empty", output_type=".google.protobuf.Empty"
        )
        method.options.Extensions[annotations_pb2.http].get = path
    pool = descriptor_pool.DescriptorPool()
    empty = descriptor_pb2.FileDescriptorProto()
    empty_pb2.DESCRIPTOR.CopyToProto(empty)
    pool.Add(empty)
    pool.Add(file)
    return pool.FindServiceByName("dup.Dup")


def test_duplicate_method_and_path_refuses_to_start() -> None:
    with pytest.raises(RouteError, match=r"GET /things is claimed by both dup.Dup.A and dup.Dup.B"):
        build_routes([_service_with_two_methods("/things", "/things")])
    with pytest.raises(RouteError, match="claimed by both"):
        build_routes([SERVICE, SERVICE])


def test_bad_template_refuses_to_start() -> None:
    with pytest.raises(RouteError, match=r"dup\.Dup\.A"):
        build_routes([_service_with_two_methods("/things/{", "/other")])


def test_literal_beats_variable() -> None:
    service = _service_with_two_methods("/things/*", "/things/special")
    table = build_routes([service])
    found = table.lookup("GET", "/things/special")
    assert isinstance(found, RouteMatch) and found.route.method.name == "B"
    other = table.lookup("GET", "/things/x")
    assert isinstance(other, RouteMatch) and other.route.method.name == "A"


def test_capabilities_come_from_method_options() -> None:
    assert capabilities([SERVICE]) == [
        "get-instance-namespace",
        "hot-plug-interface",
        "events-by-type",
        "vdi-console-helper",
        "instance-screenshot",
        "browser-console",
        "instance-execute",
        "instance-get",
        "instance-put-blob",
        "instance-agentoperations",
        "instance-agentoperations-all",
        "agentoperations-crud",
    ]


def test_a_client_stream_with_a_raw_body_is_routed_and_others_are_not() -> None:
    transfers = transfer_service_pb2.DESCRIPTOR.services_by_name["TransferService"]
    table = build_routes([transfers])
    upload = table.lookup("POST", "/upload/u1")
    data = table.lookup("GET", "/blobs/b1/data")
    assert isinstance(upload, RouteMatch) and isinstance(data, RouteMatch)
    assert upload.route.raw_body and upload.route.client_streaming
    assert data.route.raw_reply and data.route.server_streaming and not data.route.raw_body
    listing = TABLE.lookup("GET", "/instances")
    assert isinstance(listing, RouteMatch) and not listing.route.raw_body
    health = health_pb2.DESCRIPTOR.services_by_name["Health"]
    assert build_routes([health]).routes == []  # Watch: a stream without an http rule


def test_a_bidirectional_stream_on_get_with_a_bytes_response_body_is_a_websocket() -> None:
    found = TABLE.lookup("GET", "/console/ws")
    assert isinstance(found, RouteMatch)
    assert found.route.method.name == "ConsoleStream"
    assert found.route.websocket and found.route.response_body == "data"
    listing = TABLE.lookup("GET", "/instances")
    assert isinstance(listing, RouteMatch) and not listing.route.websocket
    watch = TABLE.lookup("GET", "/instances:watch")
    assert isinstance(watch, RouteMatch) and not watch.route.websocket  # a server stream only
