"""The OpenAPI document, its comment map and the /apidocs page, from the real contracts.

Comments come from `gen/sfmesh/v1/descriptors.binpb`, the file set the upstream's
reflection serves; descriptors from the generated `_pb2` modules.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, empty_pb2
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from sfmesh.v1 import auth_service_pb2, instance_service_pb2, transfer_service_pb2

from services.api_gateway.apidocs import render_apidocs
from services.api_gateway.descriptors import comment_map
from services.api_gateway.openapi import NDJSON, SSE, build_openapi, openapi_path, summary_of

FILES = descriptor_pb2.FileDescriptorSet.FromString(
    resources.files("sfmesh.v1").joinpath("descriptors.binpb").read_bytes()
).file
COMMENTS = comment_map(FILES)
SERVICES = [
    instance_service_pb2.DESCRIPTOR.services_by_name["InstanceService"],
    auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"],
]
DOC = build_openapi(SERVICES, COMMENTS)
SCHEMAS = DOC["components"]["schemas"]


def _json_schema(operation: dict[str, Any]) -> Any:
    return operation["responses"]["200"]["content"]["application/json"]["schema"]


def _deref(schema: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    return found


def test_comment_map_reads_every_kind_of_element() -> None:
    assert COMMENTS["sfmesh.v1.Instance"] == "An instance as clients see it (reference §2.1)."
    assert COMMENTS["sfmesh.v1.Instance.state"] == "Lifecycle state."
    assert COMMENTS["sfmesh.v1.InstanceState"].startswith("Lifecycle state of an instance")
    assert COMMENTS["sfmesh.v1.InstanceState.INSTANCE_STATE_DELETE_WAIT"] == (
        "Deletion has been requested and is under way."
    )
    assert COMMENTS["sfmesh.v1.InstanceService"].startswith("Creates, lists, reads")
    assert COMMENTS["sfmesh.v1.InstanceService.ListInstances"] == (
        "Lists the instances the caller can see."
    )
    assert COMMENTS["sfmesh.v1.DiskSpec.base"] == (
        'Image source: an http(s) URL or a shorthand such as "debian:11";\n'
        'unset or "none" for a blank disk.'
    )


def test_comment_map_without_source_info_is_empty() -> None:
    bare = descriptor_pb2.FileDescriptorProto()
    instance_service_pb2.DESCRIPTOR.CopyToProto(bare)
    assert comment_map([bare]) == {}


def test_document_validates_as_openapi_3_1() -> None:
    validate(DOC, cls=OpenAPIV31SpecValidator)
    assert DOC["openapi"].startswith("3.1")
    assert DOC["info"] == {**DOC["info"], "title": "sfmesh REST API", "version": "v1"}


def test_list_instances_answers_an_array_of_instances() -> None:
    listing = DOC["paths"]["/instances"]["get"]
    assert listing["operationId"] == "InstanceService_ListInstances"
    assert listing["tags"] == ["InstanceService"]
    assert listing["summary"] == "Lists the instances the caller can see."
    assert listing["description"] == COMMENTS["sfmesh.v1.InstanceService.ListInstances"]
    schema = _json_schema(listing)
    assert schema["type"] == "array"
    assert schema["items"] == {"$ref": "#/components/schemas/Instance"}
    assert [p["name"] for p in listing["parameters"]] == ["all", "page_size", "page_token"]
    assert listing["parameters"][0]["in"] == "query"
    assert listing["responses"]["404"] == {"$ref": "#/components/responses/Error404"}


def test_errors_are_the_statuses_the_gateway_answers() -> None:
    statuses = ["400", "401", "403", "404", "406", "409", "413", "500", "503", "504", "507"]
    for path, item in DOC["paths"].items():
        for op in item.values():
            first = ["101", "426"] if path == "/console/ws" else ["200"]
            assert list(op["responses"]) == [*first, *statuses]
    answers = DOC["components"]["responses"]
    assert list(answers) == [f"Error{s}" for s in statuses]
    assert answers["Error409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert set(answers["Error507"]["headers"]) == {"Retry-After"}
    assert set(answers["Error401"]["headers"]) == {"WWW-Authenticate"}


def test_path_parameters_are_required() -> None:
    get = DOC["paths"]["/instances/{ref}"]["get"]
    ref = next(p for p in get["parameters"] if p["name"] == "ref")
    assert ref == {
        "name": "ref",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "Instance UUID or name.",
    }
    assert {"name", "in"} <= next(p for p in get["parameters"] if p["name"] == "namespace").keys()
    assert _json_schema(get) == {"$ref": "#/components/schemas/Instance"}


def test_additional_bindings_get_their_own_operation() -> None:
    post = DOC["paths"]["/instances/{ref}/metadata"]["post"]
    put = DOC["paths"]["/instances/{ref}/metadata/{key}"]["put"]
    assert post["operationId"] == "InstanceService_SetInstanceMetadata"
    assert put["operationId"] == "InstanceService_SetInstanceMetadata_2"
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert body["title"] == "SetInstanceMetadataRequest"
    assert list(body["properties"]) == ["value"]
    assert _json_schema(put) == {"type": "null"}


def test_body_star_is_the_request_message() -> None:
    create = DOC["paths"]["/instances"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CreateInstanceRequest"}
    assert "disk" in _deref(body)["properties"]
    header = create["parameters"][0]
    assert (header["name"], header["in"]) == ("Idempotency-Key", "header")


def test_watch_routes_document_ndjson_and_sse() -> None:
    assert "/instances:watch" in DOC["paths"]
    watch = DOC["paths"]["/instances/{ref}:watch"]["get"]
    content = watch["responses"]["200"]["content"]
    assert set(content) == {NDJSON, SSE}
    result, error = content[NDJSON]["schema"]["oneOf"]
    assert result["properties"]["result"] == {"$ref": "#/components/schemas/WatchInstanceResponse"}
    assert error["properties"]["error"] == {"$ref": "#/components/schemas/Error"}


def test_anonymous_rpcs_need_no_token() -> None:
    assert DOC["paths"]["/auth"]["post"]["security"] == []
    assert "security" not in DOC["paths"]["/instances"]["get"]
    assert DOC["security"] == [{"bearer": []}]
    assert DOC["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_objects_admit_no_other_keys() -> None:
    assert SCHEMAS["Instance"]["additionalProperties"] is False
    assert SCHEMAS["CreateInstanceRequest"]["additionalProperties"] is False
    put = DOC["paths"]["/instances/{ref}/metadata/{key}"]["put"]
    assert (
        put["requestBody"]["content"]["application/json"]["schema"]["additionalProperties"] is False
    )


def test_streams_also_take_the_token_in_the_query() -> None:
    watch = DOC["paths"]["/instances:watch"]["get"]
    assert watch["security"] == [{"bearer": []}, {"access_token": []}]
    scheme = DOC["components"]["securitySchemes"]["access_token"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "query", "access_token")


def test_enums_are_wire_strings_or_null() -> None:
    state = SCHEMAS["Instance"]["properties"]["state"]
    assert state["description"] == "Lifecycle state."
    enum = _deref(state)
    assert enum["type"] == ["string", "null"]
    assert "delete-wait" in enum["enum"] and None in enum["enum"]
    assert "INSTANCE_STATE_DELETE_WAIT" not in enum["enum"]
    assert "- `delete-wait`: Deletion has been requested" in enum["description"]


def test_instance_fields_follow_the_dialect() -> None:
    instance = SCHEMAS["Instance"]
    fields = instance["properties"]
    assert instance["description"] == COMMENTS["sfmesh.v1.Instance"]
    assert list(fields)[:3] == ["uuid", "state", "metadata"]
    assert fields["cpus"]["type"] == "integer"
    assert fields["ssh_key"]["type"] == ["string", "null"]
    assert fields["agent_start_time"]["type"] == ["number", "null"]
    assert fields["metadata"]["type"] == ["object", "null"]
    assert fields["side_channels"] == {**fields["side_channels"], "type": "array"}
    assert fields["video"]["anyOf"] == [
        {"$ref": "#/components/schemas/VideoSpec"},
        {"type": "null"},
    ]
    assert fields["requested_placement"]["type"] == "string"  # absent while unset, never null
    assert fields["disk_spec"]["items"] == {"$ref": "#/components/schemas/DiskSpec"}
    assert "Error" in SCHEMAS and SCHEMAS["Error"]["properties"]["status"]["type"] == "integer"


def test_value_and_response_body_scalars() -> None:
    put = DOC["paths"]["/instances/{ref}/metadata/{key}"]["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["value"] == {
        "description": "The value; any JSON value except a falsy one."
    }
    key = DOC["paths"]["/auth/namespaces/{namespace}/keys"]["post"]
    assert _json_schema(key)["type"] == "string"


def test_paths_and_summaries() -> None:
    assert openapi_path("/v1/{name=things/*}/x:do") == "/v1/{name}/x:do"
    assert summary_of("Does a thing. Then more.\nDetails.") == "Does a thing."
    assert summary_of("One line") == "One line"
    assert summary_of('Reads a state, e.g. "ready". More.') == 'Reads a state, e.g. "ready".'


def _edge_service() -> Any:
    """A hand-built service: nested, recursive, map, bytes and uint64 fields; odd rules."""
    file = descriptor_pb2.FileDescriptorProto(
        name="edge/edge.proto",
        package="edge",
        syntax="proto3",
        dependency=["google/protobuf/empty.proto"],
    )
    node = file.message_type.add(name="Node")
    inner = node.nested_type.add(name="Inner")
    inner.field.add(name="label", number=1, type=9, label=1)
    inner.field.add(name="nums", number=2, type=5, label=3)
    entry = node.nested_type.add(name="CountsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=9, label=1)
    entry.field.add(name="value", number=2, type=3, label=1)
    node.field.add(name="name", number=1, type=9, label=1)
    node.field.add(name="child", number=2, type=11, label=1, type_name=".edge.Node")
    node.field.add(name="counts", number=3, type=11, label=3, type_name=".edge.Node.CountsEntry")
    node.field.add(name="blob", number=4, type=12, label=1)
    node.field.add(name="big", number=5, type=4, label=1)
    node.field.add(name="inner", number=6, type=11, label=1, type_name=".edge.Node.Inner")
    service = file.service.add(name="Edge")
    rules = {"Get": ("get", "/nodes/{name=things/*}"), "Put": ("put", "/nodes/{name}")}
    for name, (verb, path) in rules.items():
        method = service.method.add(name=name, input_type=".edge.Node", output_type=".edge.Node")
        setattr(method.options.Extensions[annotations_pb2.http], verb, path)
    service.method[1].options.Extensions[annotations_pb2.http].body = "inner"
    purge = service.method.add(
        name="Purge", input_type=".edge.Node", output_type=".google.protobuf.Empty"
    )
    purge.options.Extensions[annotations_pb2.http].custom.kind = "PURGE"
    purge.options.Extensions[annotations_pb2.http].custom.path = "/nodes"
    pool = descriptor_pool.DescriptorPool()
    empty = descriptor_pb2.FileDescriptorProto()
    empty_pb2.DESCRIPTOR.CopyToProto(empty)
    pool.Add(empty)
    pool.Add(file)
    return pool.FindServiceByName("edge.Edge")


def test_maps_recursion_nesting_and_odd_rules() -> None:
    doc = build_openapi([_edge_service()], {})
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert list(doc["paths"]) == ["/nodes/{name}"]  # PURGE has no OpenAPI method
    get = doc["paths"]["/nodes/{name}"]["get"]
    query = {p["name"]: p["schema"] for p in get["parameters"] if p["in"] == "query"}
    assert query == {
        "blob": {"type": "string", "format": "byte"},
        "big": {"type": "integer", "minimum": 0},
        "inner.label": {"type": "string"},
        "inner.nums": {"type": "array", "items": {"type": "integer", "format": "int32"}},
    }
    put = doc["paths"]["/nodes/{name}"]["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert body["anyOf"][0] == {"$ref": "#/components/schemas/Node.Inner"}
    assert "inner.label" not in {p["name"] for p in put["parameters"]}
    fields = doc["components"]["schemas"]["Node"]["properties"]
    assert fields["child"]["anyOf"][0] == {"$ref": "#/components/schemas/Node"}
    assert fields["counts"] == {
        "type": "object",
        "additionalProperties": {"type": "integer", "format": "int64"},
    }


def test_apidocs_page_is_self_contained_html() -> None:
    page = render_apidocs(DOC).decode()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert 'href="/openapi.json"' in page
    assert 'id="op-InstanceService_ListInstances"' in page
    assert "Lists the instances the caller can see." in page
    assert '<a href="#schema-Instance">Instance</a>' in page
    assert "<code>delete-wait</code>" in page
    assert "no token needed" in page


@pytest.mark.parametrize("path", sorted(DOC["paths"]))
def test_every_path_variable_is_a_parameter(path: str) -> None:
    for operation in DOC["paths"][path].values():
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == {part[1:-1] for part in path.replace(":", "/").split("/") if "{" in part}


def test_raw_bodies_are_octet_streams_both_ways() -> None:
    transfers = transfer_service_pb2.DESCRIPTOR.services_by_name["TransferService"]
    document = build_openapi([transfers], COMMENTS)
    validate(document, cls=OpenAPIV31SpecValidator)
    upload = document["paths"]["/upload/{upload_uuid}"]["post"]
    data = document["paths"]["/blobs/{uuid}/data"]["get"]
    binary = {"type": "string", "format": "binary"}
    assert upload["requestBody"]["content"] == {"application/octet-stream": {"schema": binary}}
    assert data["responses"]["200"]["content"] == {"*/*": {"schema": binary}}
    assert {p["name"] for p in data["parameters"]} >= {"uuid", "offset", "limit", "Range"}


def test_a_websocket_route_is_an_upgrade_with_its_first_message_in_the_query() -> None:
    socket = DOC["paths"]["/console/ws"]["get"]
    assert socket["security"] == []  # the ticket is the credential
    assert [p["name"] for p in socket["parameters"]] == ["instance", "ticket"]
    assert "WebSocket" in socket["responses"]["101"]["description"]
    assert socket["responses"]["426"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
