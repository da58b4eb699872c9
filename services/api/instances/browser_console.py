"""The browser console of InstanceService (our extension; issue 15, item 2).

- `POST /instances/{ref}/consoleticket` (`CreateConsoleTicket`): for an
  instance the caller reaches (others' 404), a signed ticket
  (`console_tickets.py`) and the console page's URL. 406 unless the
  instance is `created` and on, with a console port; 409 when it has no
  port (as the virt-viewer file) or a SPICE console: noVNC speaks VNC only.
- `ConsoleStream`, the gateway's WebSocket `GET /console/ws`: the first
  message's ticket is checked (signature, expiry, instance; its caller's
  key not revoked; its namespace still reaching the instance, else 404;
  the instance as above), its id claimed in etcd so it opens one session
  only, then the hosting node agent's `RelayConsole` reaches the console.
  Only then does the stream send its initial metadata (the gateway accepts
  the WebSocket on it), and bytes flow both ways, one message in flight
  each way: a slow side slows the other, no buffer grows here.

The session ends when the node agent's relay ends (the domain stopped:
QEMU closes its console), when the ticket expires (401 `TICKET_EXPIRED`,
which the page shows), or when the gateway's side goes. Opening and
closing are audit events of the instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from sfmesh.v1 import instance_pb2, instance_service_pb2, node_agent_service_pb2

from services.api.clients.events import Events
from services.api.clients.node_agents import NodeAgents
from services.api.instances import console_tickets as tickets
from services.api.instances.history import state_name
from services.api.instances.lookup import InstanceLookup
from services.api.visibility import can_see
from services.common import errors
from services.common import instance_states as states
from services.common.instance_store import InstanceStore
from services.common.interceptors import caller
from services.common.store import Put, Store, key
from services.common.tokens import Caller

TICKET_KIND = "console_ticket"
"""etcd keys `/sfmesh/v1/console_ticket/<ticket id>`: a ticket used, kept
until it expires (and `CLOCK_MARGIN` longer)."""
CLOCK_MARGIN = 60
"""Seconds a used ticket's mark outlives the ticket: each replica checks
expiry by its own clock, and one running behind must still find the mark."""
ON = instance_pb2.POWER_STATE_ON


def check_console(instance: instance_pb2.Instance) -> None:
    """What a browser console needs of an instance: `created`, on, a VNC
    console with a port; 406 or 409 otherwise. Pure."""
    if instance.state != states.CREATED:
        raise errors.NotReady(
            f"instance {instance.uuid} is not ready ({state_name(instance.state)})"
        )
    if not instance.HasField("vdi_port"):
        raise errors.Conflict(
            f"instance {instance.uuid} has no graphical console port", reason="NO_CONSOLE_PORT"
        )
    if instance.video.vdi != instance_pb2.VDI_TYPE_VNC:
        raise errors.Conflict(
            f"instance {instance.uuid} has a SPICE console; the browser console speaks VNC "
            '(create it with "video": {"vdi": "vnc"})',
            reason="CONSOLE_NOT_VNC",
        )
    if instance.power_state != ON:
        raise errors.NotReady(f"instance {instance.uuid} is not running", reason="NOT_RUNNING")


class BrowserConsole:
    """Console tickets and the console streams they open."""

    def __init__(
        self,
        *,
        lookup: InstanceLookup,
        instances: InstanceStore,
        store: Store,
        events: Events,
        node_agents: NodeAgents,
        check_caller: Callable[[Caller], Awaitable[None]],
        secret: str,
        ttl: int,
    ) -> None:
        """`check_caller` raises 401 for a revoked key (`Revocation.check`);
        `ttl` is the longest a ticket lives, and its default."""
        self._lookup = lookup
        self._instances = instances
        self._store = store
        self._events = events
        self._node_agents = node_agents
        self._check_caller = check_caller
        self._secret = secret
        self._ttl = ttl

    async def ticket(
        self, request: instance_service_pb2.CreateConsoleTicketRequest
    ) -> instance_service_pb2.ConsoleTicket:
        """A ticket to the console of the instance `request.ref` names."""
        ttl = tickets.lifetime(request.ttl if request.HasField("ttl") else None, self._ttl)
        instance = (await self._lookup.resolve(request.ref)).record.instance
        check_console(instance)
        who = caller()
        ticket = tickets.new_ticket(
            instance.uuid,
            namespace=who.namespace,
            key_name=who.key_name,
            nonce=who.nonce,
            now=time.time(),
            ttl=ttl,
        )
        token = tickets.sign(ticket, self._secret)
        self._events.audit(instance.uuid, "console ticket request from REST API", {"ttl": ttl})
        return instance_service_pb2.ConsoleTicket(
            instance=instance.uuid,
            ticket=token,
            url=tickets.page_url(instance.uuid, token),
            expires_at=ticket.expires_at,
        )

    async def stream(
        self,
        requests: AsyncIterator[instance_service_pb2.ConsoleStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[instance_service_pb2.ConsoleStreamResponse]:
        """Check the first message's ticket, reach the console, relay it."""
        first = await anext(requests, None)
        if first is None or not first.ticket:
            raise errors.Unauthenticated("a console ticket is required", reason="NO_TICKET")
        ticket = tickets.verify(
            first.ticket, self._secret, instance=first.instance, now=time.time()
        )
        await self._check_caller(Caller(ticket.namespace, ticket.key_name, ticket.nonce))
        stored = await self._instances.get(ticket.instance)
        if stored is None or not can_see(ticket.namespace, stored.record.instance.namespace):
            raise errors.NotFound("instance not found")
        instance = stored.record.instance
        check_console(instance)
        await self._claim(ticket)
        relay = await self._node_agents.relay_console(instance.node, instance.uuid)
        self._events.audit(instance.uuid, "browser console opened", {"namespace": ticket.namespace})
        ended = "the console closed"
        try:
            await context.send_initial_metadata(())
            async for data in _relayed(requests, relay, ticket.expires_at):
                yield instance_service_pb2.ConsoleStreamResponse(data=data)
        except errors.SfmeshError as exc:
            ended = exc.message
            raise
        finally:
            relay.cancel()
            self._events.audit(instance.uuid, "browser console closed", {"reason": ended})

    async def _claim(self, ticket: tickets.Ticket) -> None:
        """Mark the ticket used until it expires, and `CLOCK_MARGIN` longer;
        401 when it was already."""
        seconds = max(0, math.ceil(ticket.expires_at - time.time())) + CLOCK_MARGIN
        lease = await self._store.grant(seconds)
        claimed = Put(key(TICKET_KIND, ticket.ticket_id), b"", 0, lease=lease)
        if not await self._store.commit([claimed]):
            raise errors.Unauthenticated("console ticket already used", reason="TICKET_USED")


async def _relayed(
    requests: AsyncIterator[instance_service_pb2.ConsoleStreamRequest],
    relay: grpc.aio.StreamStreamCall,
    expires_at: float,
) -> AsyncIterator[bytes]:
    """The console's bytes, while the browser's go up beside them, until
    the relay ends or the ticket expires (401): a timer cancels the relay
    then (one timer, not a timeout per read)."""
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        relay.cancel()

    timer = asyncio.get_running_loop().call_later(max(0.0, expires_at - time.time()), expire)
    up = asyncio.ensure_future(_send_up(requests, relay))
    try:
        while True:
            try:
                reply = await relay.read()
            except (grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
                if expired:
                    raise errors.Unauthenticated(
                        "console ticket expired", reason="TICKET_EXPIRED"
                    ) from None
                if isinstance(exc, grpc.aio.AioRpcError):
                    raise errors.from_rpc_error(exc, "node agent") from exc
                raise
            if reply is grpc.aio.EOF:
                return
            yield reply.data
    finally:
        timer.cancel()
        up.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await up


async def _send_up(
    requests: AsyncIterator[instance_service_pb2.ConsoleStreamRequest],
    relay: grpc.aio.StreamStreamCall,
) -> None:
    """The browser's bytes to the relay, then the end of them."""
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        async for request in requests:
            if request.data:
                await relay.write(node_agent_service_pb2.RelayConsoleRequest(data=request.data))
        await relay.done_writing()
