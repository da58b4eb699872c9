"""The events an instance's life records (reference §7): what a new record
writes, and each change of state, told by the writer that made it, on the
emitter or into the write's outbox entry."""

from __future__ import annotations

from google.protobuf import json_format
from sfmesh.v1 import instance_pb2

from services.api.clients.events import Recorder
from services.common.wire import wire_name


def state_name(state: int) -> str:
    """An instance state's wire string. Pure."""
    return wire_name(instance_pb2.InstanceState.DESCRIPTOR, state)


def record_state(events: Recorder, uuid: str, state: int) -> None:
    """The `set attribute` of a new state."""
    events.attribute_set(uuid, "state", state_name(state))


def record_creation(events: Recorder, instance: instance_pb2.Instance) -> None:
    """The events of a new record (reference §7.3, steps 1 to 5)."""
    summary = {
        "name": instance.name,
        "namespace": instance.namespace,
        "cpus": instance.cpus,
        "memory": instance.memory,
        "version": instance.version,
    }
    events.audit(instance.uuid, "db record created", summary)
    record_state(events, instance.uuid, instance.state)
    events.attribute_set(
        instance.uuid,
        "power_state",
        {"power_state": wire_name(instance_pb2.PowerState.DESCRIPTOR, instance.power_state)},
    )
    events.audit(instance.uuid, "create request from REST API")
    if instance.metadata.fields:
        events.attribute_set(
            instance.uuid, "metadata", json_format.MessageToDict(instance.metadata)
        )
