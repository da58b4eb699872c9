"""A lease this process holds in etcd: granted, kept alive through whichever
member answers (`etcd_clients.py` fails over for it), revoked at the end
(or left to run out, for a holder whose keys should outlive a restart).

Keys written with the lease (`Put(..., lease=kept.id)`) go when it expires:
what must vanish with its holder (a leader's claim, a node's address). The
keep-alive is sent every third of the TTL; a member that dies costs one
round on the next member, well inside the TTL. `lost` is set when etcd says
the lease has expired (the holder was cut off for a whole TTL): its keys are
gone, and the holder must act on that, not on keeping it alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

import aetcd
import grpc
from aetcd import rpc

from services.common import errors
from services.common.etcd_clients import EtcdClients, call_options

log = logging.getLogger(__name__)


async def grant(etcd: EtcdClients, ttl: int) -> int:
    """A new lease of `ttl` seconds, not kept alive; its id."""
    request = rpc.LeaseGrantRequest(TTL=ttl)
    # a grant repeated after a lost answer may leave an unused lease: it expires
    reply = await etcd.call(
        lambda client: client.leasestub.LeaseGrant(request, **call_options(client)),
        operation="lease-grant",
    )
    return int(reply.ID)


class KeptLease:
    """`async with store.lease(ttl) as kept:` a lease of `ttl` seconds."""

    def __init__(self, etcd: EtcdClients, ttl: int, *, revoke: bool = True) -> None:
        if ttl < 2:
            raise ValueError("a lease's TTL is at least 2 seconds")
        self.ttl = ttl
        self._revoke = revoke
        self.id = 0
        """etcd's id of the lease, once granted."""
        self.lost = asyncio.Event()
        """Set when etcd answered that the lease expired."""
        self._etcd = etcd
        self._keeper: asyncio.Task[None] | None = None

    async def __aenter__(self) -> KeptLease:
        self.id = await grant(self._etcd, self.ttl)
        self._keeper = asyncio.create_task(self._keep_alive())
        return self

    async def __aexit__(
        self, kind: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            # waited for, not awaited: a cancel of the holder is not swallowed
            await asyncio.wait([self._keeper])
        if self._revoke and not self.lost.is_set():
            revoke = rpc.LeaseRevokeRequest(ID=self.id)
            with contextlib.suppress(errors.Unavailable):
                await self._etcd.call(
                    lambda client: client.leasestub.LeaseRevoke(revoke, **call_options(client)),
                    operation="lease-revoke",
                )

    async def _keep_alive(self) -> None:
        every = self.ttl / 3
        while True:
            await asyncio.sleep(every)
            try:
                ttl = await self._etcd.call(self._refresh, operation="lease-keepalive")
            except errors.Unavailable as exc:
                log.warning("could not keep lease %x alive: %s", self.id, exc)
                continue
            if ttl <= 0:
                log.error("etcd lease %x expired", self.id)
                self.lost.set()
                return

    async def _refresh(self, client: aetcd.Client) -> int:
        """One keep-alive on `client`: the TTL etcd grants again (0: expired)."""
        call = client.leasestub.LeaseKeepAlive(metadata=client.metadata)
        try:
            async with asyncio.timeout(client._timeout):
                await call.write(rpc.LeaseKeepAliveRequest(ID=self.id))
                answer = await call.read()
        except TimeoutError:
            raise errors.Unavailable(
                "etcd did not answer a lease keep-alive", reason="ETCD_UNAVAILABLE"
            ) from None
        finally:
            call.cancel()
        if answer is grpc.aio.EOF:
            raise errors.Unavailable("etcd ended a lease keep-alive", reason="ETCD_UNAVAILABLE")
        return int(answer.TTL)
