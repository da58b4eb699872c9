"""Relaying an instance's VNC console to the api (`RelayConsole`), for the
gateway's browser console (issue 15, item 2).

The first message names an instance; the agent connects to that
instance's own console and to nothing else: the port its record holds
(`vdi_port`, which this agent gave it from `--console-ports`, so never one
of the mesh's own), at this agent's `--console-listen` address (loopback
for a wildcard listen). Nothing in the request names an address or a
port. It refuses an instance not hosted here (404), not running or
without a port (406), or whose console is SPICE (409), and a port outside
the console range (409).

Once connected it sends its initial metadata (the api waits for it before
answering the browser), then pumps bytes both ways: each read of the
console (at most `CHUNK` bytes) is one message, read only once the one
before was sent; each message from the api is written and drained before
the next is read. A slow side slows the other and nothing queues here.
The relay ends when the console closes (QEMU closes it when the domain
stops or goes), when the api ends or cancels the stream, or when the
console cannot be written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from sfmesh.v1 import instance_pb2, node_agent_service_pb2

from services.common import errors
from services.common.instance_store import StoredInstance
from services.node_agent.graphics_ports import WILDCARDS, GraphicsSettings

CHUNK = 64 * 1024
"""The most bytes of the console sent in one message."""
CONNECT_TIMEOUT = 5.0
"""Seconds to reach the console."""


def console_address(instance: instance_pb2.Instance, settings: GraphicsSettings) -> tuple[str, int]:
    """Where the VNC console of a running instance listens, or why it
    cannot be relayed (406/409). Pure."""
    uuid = instance.uuid
    if not instance.HasField("vdi_port"):
        raise errors.NotReady(f"instance {uuid} has no console port", reason="NO_CONSOLE_PORT")
    if instance.video.vdi != instance_pb2.VDI_TYPE_VNC:
        raise errors.Conflict(f"instance {uuid} has no VNC console", reason="CONSOLE_NOT_VNC")
    if instance.vdi_port not in settings.ports:
        raise errors.Conflict(
            f"instance {uuid}'s console port is outside {settings.ports.start}-"
            f"{settings.ports.stop - 1}",
            reason="CONSOLE_PORT_OUTSIDE",
        )
    host = settings.listen
    if host in WILDCARDS:
        host = "::1" if host == "::" else "127.0.0.1"
    return host, instance.vdi_port


class ConsoleRelay:
    """The VNC consoles of this node's instances, relayed."""

    def __init__(
        self,
        *,
        lookup: Callable[[str], StoredInstance | None],
        power: Callable[[str], Awaitable[instance_pb2.PowerState | None]],
        settings: GraphicsSettings,
    ) -> None:
        """`lookup` finds an instance placed here; `power` reads its domain's
        power state (None: no domain)."""
        self._lookup = lookup
        self._power = power
        self._settings = settings

    async def relay(
        self,
        requests: AsyncIterator[node_agent_service_pb2.RelayConsoleRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[node_agent_service_pb2.RelayConsoleResponse]:
        """Check, connect, announce, pump (see the module's docstring)."""
        first = await anext(requests, None)
        uuid = first.instance_uuid if first is not None else ""
        if not uuid:
            raise errors.InvalidArgument("instance_uuid is required")
        stored = self._lookup(uuid)
        if stored is None:
            raise errors.NotFound(f"instance {uuid} is not on this node")
        host, port = console_address(stored.record.instance, self._settings)
        if await self._power(uuid) != instance_pb2.POWER_STATE_ON:
            raise errors.NotReady(f"instance {uuid} is not running", reason="NOT_RUNNING")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            raise errors.NotReady(
                f"the console of instance {uuid} does not answer", reason="CONSOLE_UNREACHABLE"
            ) from exc
        up = asyncio.ensure_future(_to_console(requests, writer))
        try:
            await context.send_initial_metadata(())
            while data := await _read(reader):
                yield node_agent_service_pb2.RelayConsoleResponse(data=data)
        finally:
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await up
            writer.close()


async def _read(reader: asyncio.StreamReader) -> bytes:
    """The console's next bytes; none once it closed or broke."""
    try:
        return await reader.read(CHUNK)
    except ConnectionError:
        return b""


async def _to_console(
    requests: AsyncIterator[node_agent_service_pb2.RelayConsoleRequest],
    writer: asyncio.StreamWriter,
) -> None:
    """The api's bytes into the console, each drained before the next; the
    console's write side ends with them."""
    with contextlib.suppress(ConnectionError, grpc.aio.AioRpcError):
        async for request in requests:
            if request.data:
                writer.write(request.data)
                await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
