"""This node's presence in etcd: its advertised address at
`/sfmesh/v1/node_presence/<name>`, under a lease this agent keeps alive
(`services/common/presence.py`).

The lease is the node's liveness: if this agent or its host dies, the key
goes a TTL later and the leading scheduler marks the node `missing`,
whichever scheduler leads by then. A stop leaves the lease to run out, so a
restart within the TTL (an upgrade) is an outage the scheduler awaits, not
a missing node: the new agent's write puts the key under its own lease,
and the old one's expiry takes nothing with it. A lease etcd
says expired (this agent was cut off from etcd for a whole TTL) is replaced
by a new one and the key written again, which brings the node back. Why the
agent holds it and not the scheduler: the agent is what must be alive, and
a scheduler failover must neither reset the clock nor make every node
missing while the new leader catches up.
"""

from __future__ import annotations

import asyncio
import logging

from services.common import errors
from services.common.presence import presence_key
from services.common.store import Put, Store

log = logging.getLogger("sfmesh.node_agent.presence")

DEFAULT_TTL = 15
"""Seconds a node's presence outlives its agent."""
MIN_TTL = 2
"""The shortest lease etcd keeps alive here (`services/common/leases.py`)."""
RETRY = 1.0
"""Seconds between tries while etcd cannot be reached."""


class Presence:
    """Holds node `node`'s presence key for as long as `run` runs."""

    def __init__(self, store: Store, node: str, address: str, *, ttl: int = DEFAULT_TTL) -> None:
        self._store = store
        self._node = node
        self._address = address
        self._ttl = ttl
        self.held = asyncio.Event()
        """Set once the key is first written."""

    async def run(self) -> None:
        """Write the key under a kept lease; write it again under a new lease
        whenever one is lost, until cancelled (the lease then runs out)."""
        while True:
            try:
                async with self._store.lease(self._ttl, revoke=False) as kept:
                    at = presence_key(self._node)
                    await self._store.commit([Put(at, self._address.encode(), lease=kept.id)])
                    log.info("presence held", extra={"fields": {"ttl": self._ttl}})
                    self.held.set()
                    await kept.lost.wait()
                    log.warning("presence lease expired; taking a new one")
            except errors.SfmeshError as exc:
                log.warning("cannot hold presence: %s", exc.message)
                await asyncio.sleep(RETRY)
