"""An instance's tags: the strings of its `metadata.tags` list, which
affinity (reference §6.3) matches against. The api sends them with a
placement; the scheduler reads them from placed instances."""

from __future__ import annotations

from sfmesh.v1 import instance_pb2


def instance_tags(instance: instance_pb2.Instance) -> frozenset[str]:
    """The instance's tags; none when `metadata.tags` is missing. Pure."""
    if "tags" not in instance.metadata.fields:
        return frozenset()
    values = instance.metadata.fields["tags"].list_value.values
    return frozenset(value.string_value for value in values if value.HasField("string_value"))
