"""services/common/interceptors.py: the pure parts. The interceptors themselves
run in tests/integration/api/test_api_service.py, on a real server."""

from __future__ import annotations

import pytest
from sfmesh.v1 import (  # noqa: F401 - importing registers the services' descriptors
    auth_service_pb2,
    eventlog_service_pb2,
    instance_service_pb2,
    node_agent_service_pb2,
    options_pb2,
    scheduler_service_pb2,
)

from services.common import errors
from services.common.interceptors import caller, method_access, request_id


def test_anonymous_rpc() -> None:
    assert method_access("/sfmesh.v1.AuthService/CreateToken") == options_pb2.ACCESS_ANONYMOUS


@pytest.mark.parametrize(
    "method",
    [
        "/sfmesh.v1.InstanceService/ListInstances",
        "/sfmesh.v1.InstanceService/CreateInstance",
        "/sfmesh.v1.InstanceService/WatchInstances",
        "/sfmesh.v1.AuthService/ListNamespaces",
    ],
)
def test_unset_option_means_user(method: str) -> None:
    assert method_access(method) == options_pb2.ACCESS_USER


@pytest.mark.parametrize(
    "method",
    [
        "/sfmesh.v1.SchedulerService/PlaceInstance",
        "/sfmesh.v1.SchedulerService/ReportNode",
        "/sfmesh.v1.EventLogService/Record",
        "/sfmesh.v1.NodeAgentService/ChangePower",
    ],
)
def test_internal_rpc(method: str) -> None:
    assert method_access(method) == options_pb2.ACCESS_INTERNAL


@pytest.mark.parametrize(
    "method",
    [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/other.pkg.Service/Method",
    ],
)
def test_non_sfmesh_methods_are_anonymous(method: str) -> None:
    assert method_access(method) == options_pb2.ACCESS_ANONYMOUS


def test_no_caller_outside_a_request() -> None:
    with pytest.raises(errors.Unauthenticated, match=r"^Missing Authorization Header$"):
        caller()


def test_no_request_id_outside_a_request() -> None:
    assert request_id() == ""
