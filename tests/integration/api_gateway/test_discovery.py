"""/openapi.json and /apidocs from a real gateway in front of a real grpc.aio upstream.

The upstream serves sfmesh's commented reflection (`services.common.reflection`),
so the document carries the proto comments, as in production. Its servicers are
the generated base classes: discovery never calls them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import grpc
import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from sfmesh.v1 import (
    auth_service_pb2,
    auth_service_pb2_grpc,
    instance_service_pb2,
    instance_service_pb2_grpc,
)

from services.common.reflection import enable_reflection

SERVICES = [
    instance_service_pb2.DESCRIPTOR.services_by_name["InstanceService"].full_name,
    auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
]


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[str]:
    server = grpc.aio.server()
    instance_service_pb2_grpc.add_InstanceServiceServicer_to_server(
        instance_service_pb2_grpc.InstanceServiceServicer(), server
    )
    auth_service_pb2_grpc.add_AuthServiceServicer_to_server(
        auth_service_pb2_grpc.AuthServiceServicer(), server
    )
    enable_reflection(SERVICES, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture(scope="module")
async def gateway(
    upstream: str, gateway_runner: Callable[..., AbstractAsyncContextManager[str]]
) -> AsyncIterator[str]:
    async with gateway_runner(upstream) as url:
        yield url


async def test_openapi_json_describes_the_upstream_with_comments(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "x-request-id" in response.headers
    document = response.json()
    validate(document, cls=OpenAPIV31SpecValidator)
    listing = document["paths"]["/instances"]["get"]
    assert listing["operationId"] == "InstanceService_ListInstances"
    assert listing["description"] == "Lists the instances the caller can see."
    assert document["paths"]["/auth"]["post"]["security"] == []
    state = document["components"]["schemas"]["InstanceState"]
    assert "delete-wait" in state["enum"]
    assert "Deletion has been requested" in state["description"]
    assert sorted(t["name"] for t in document["tags"]) == ["AuthService", "InstanceService"]


async def test_apidocs_is_a_readable_page(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.get("/apidocs", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-encoding"] == "gzip"
    page = response.text
    assert "ListInstances" in page
    assert "Lists the instances the caller can see." in page
    assert 'href="/openapi.json"' in page
    assert "<script" not in page


async def test_discovery_needs_get(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        response = await client.post("/openapi.json")
    assert response.status_code == 404
    assert response.json()["status"] == 404
