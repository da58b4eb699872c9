"""services/node_agent/resync.py without etcd or libvirt: lifecycle events
before the placed instances are known reach nobody."""

from __future__ import annotations

import asyncio

from sfmesh.v1 import instance_pb2

from services.node_agent.resync import once_synced


async def test_lifecycle_events_are_heard_only_once_the_placed_instances_are_known() -> None:
    synced = asyncio.Event()
    heard: list[tuple[str, instance_pb2.PowerState]] = []
    observed = once_synced(synced, lambda uuid, power: heard.append((uuid, power)))
    observed("a", instance_pb2.POWER_STATE_OFF)  # would look placed elsewhere: torn down
    assert heard == []
    synced.set()
    observed("b", instance_pb2.POWER_STATE_ON)
    assert heard == [("b", instance_pb2.POWER_STATE_ON)]
