"""services/api/instances/idempotency.py: what makes two creates the same request."""

from __future__ import annotations

from sfmesh.v1 import instance_pb2, instance_service_pb2

from services.api.instances.idempotency import record_key, request_hash


def create(**fields: object) -> instance_service_pb2.CreateInstanceRequest:
    request = instance_service_pb2.CreateInstanceRequest(
        name="web", cpus=1, memory=256, disk=[instance_pb2.DiskSpec(size=8)]
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return request


def test_the_key_itself_does_not_change_the_hash() -> None:
    assert request_hash(create(idempotency_key="a")) == request_hash(create(idempotency_key="b"))
    assert request_hash(create(idempotency_key="a")) == request_hash(create())


def test_any_other_field_does() -> None:
    assert request_hash(create(cpus=2)) != request_hash(create())
    assert request_hash(create(name="db")) != request_hash(create())


def test_keys_are_per_namespace_and_any_string_is_safe() -> None:
    assert record_key("a", "k") != record_key("b", "k")
    assert b"/" not in record_key("a", "x/y/../z").removeprefix(b"/sfmesh/v1/idempotency/a/")
