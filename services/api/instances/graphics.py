"""The graphical console routes of InstanceService (guest-access reference
§2.3 and §3, with the differences docs/compatibility.md lists).

- `GET /instances/{ref}/vdiconsolehelper`: the virt-viewer file pointing
  at the console the node agent gave the instance (its record's `vdi_port`
  and `vdi_host`, so no node agent is asked). The type is `vnc` or `spice`
  (every SPICE flavour, as later Shaken Fist writes: virt-viewer knows no
  `spiceconcurrent`); there is no `tls-port`, `host-subject` nor `ca` line,
  since SPICE runs without TLS. No port yet: 406 while the instance is
  being built (the client retries), 409 otherwise (an instance in error,
  deleted, or made before consoles had ports: no retry helps).
- `GET /instances/{ref}/screenshot`: 406 unless the instance is `created`;
  the hosting node agent takes screen 0 into a new PNG blob that only the
  instance's namespace (and system) may read, and which the artifact sweep
  deletes `SCREENSHOT_RETENTION` seconds later; the answer is its uuid. A
  domain that is not running is 406 too (Shaken Fist: 500).
"""

from __future__ import annotations

import time

from google.api import httpbody_pb2
from sfmesh.v1 import instance_pb2, instance_service_pb2, records_pb2

from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.instances.history import state_name
from services.api.instances.lookup import InstanceLookup
from services.api.instances.power import check_ready
from services.common import errors
from services.common import instance_states as states
from services.common.interceptors import request_id

VIRT_VIEWER = "application/x-virt-viewer"
SCREENSHOT_RETENTION = 3600.0
"""Seconds a screenshot's blob lives before the artifact sweep deletes it."""
BUILDING = frozenset({states.INITIAL, states.PREFLIGHT, states.CREATING})


def viewer_type(vdi: instance_pb2.VdiType) -> str:
    """The virt-viewer `type` of an instance's `video.vdi`. Pure."""
    return "vnc" if vdi == instance_pb2.VDI_TYPE_VNC else "spice"


def virt_viewer_file(record: records_pb2.InstanceRecord) -> str:
    """The virt-viewer file of an instance whose console has a port (else
    406 while it is built, 409 otherwise). Pure."""
    instance = record.instance
    if not instance.HasField("vdi_port") or not record.vdi_host:
        if instance.state in BUILDING:
            raise errors.NotReady(
                f"instance {instance.uuid} is not ready ({state_name(instance.state)})"
            )
        raise errors.Conflict(
            f"instance {instance.uuid} has no graphical console port "
            f"({state_name(instance.state)})",
            reason="NO_CONSOLE_PORT",
        )
    lines = [
        "[virt-viewer]",
        f"type={viewer_type(instance.video.vdi)}",
        f"host={record.vdi_host}",
        f"port={instance.vdi_port}",
        "delete-this-file=1",
    ]
    return "".join(f"{line}\n" for line in lines)


class GraphicsConsole:
    """The virt-viewer file and screenshots of instances."""

    def __init__(self, lookup: InstanceLookup, events: Events, node_agents: NodeAgents) -> None:
        self._lookup = lookup
        self._events = events
        self._node_agents = node_agents

    async def helper(self, ref: str) -> httpbody_pb2.HttpBody:
        """The virt-viewer file of the instance `ref` names."""
        record = (await self._lookup.read(ref)).record
        text = virt_viewer_file(record)
        return httpbody_pb2.HttpBody(content_type=VIRT_VIEWER, data=text.encode())

    async def screenshot(self, ref: str) -> instance_service_pb2.GetScreenshotResponse:
        """A new screenshot blob of the instance `ref` names."""
        instance = (await self._lookup.resolve(ref)).record.instance
        check_ready(instance)
        self._events.audit(instance.uuid, "screenshot request from REST API")
        blob_uuid = await self._node_agents.take_screenshot(
            instance.node,
            instance.uuid,
            namespace=instance.namespace,
            expires_at=time.time() + SCREENSHOT_RETENTION,
            request_id=request_id(),
        )
        return instance_service_pb2.GetScreenshotResponse(blob_uuid=blob_uuid)
