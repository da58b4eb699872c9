"""The other nodes' underlay addresses, followed from their node records (a
snapshot, then a watch from its revision) and handed to the data plane
whenever they change, so every network's VXLAN floods to exactly the other
nodes of the mesh. A watch that falls behind or an etcd outage starts over;
a data plane that refuses the change is asked again until it takes it."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable

from sfmesh.v1 import records_pb2

from services.common import errors
from services.common.store import Store, kind_prefix
from services.node_agent.commands import DataPlaneError

log = logging.getLogger("sfmesh.node_agent.peers")

RETRY_DELAY = 2.0


def underlay_peers(records: Iterable[bytes], node: str) -> frozenset[str]:
    """The underlay addresses of every node but `node`, from serialized node
    records; records without a valid IPv4 address are skipped. Pure."""
    peers = set()
    for value in records:
        record = records_pb2.NodeRecord.FromString(value)
        address = record.facts.underlay_address
        if record.name == node or not address:
            continue
        try:
            peers.add(str(ipaddress.IPv4Address(address)))
        except ValueError:
            log.warning("node %s reports a bad underlay address %r", record.name, address)
    return frozenset(peers)


class Peers:
    """Keeps `apply` fed with the current peers for as long as `run` runs."""

    def __init__(
        self, store: Store, node: str, apply: Callable[[frozenset[str]], Awaitable[None]]
    ) -> None:
        self._store = store
        self._node = node
        self._apply = apply
        self._applied: frozenset[str] | None = None

    async def run(self) -> None:
        """Follow the node records until cancelled."""
        prefix = kind_prefix("node")
        while True:
            try:
                snapshot = await self._store.snapshot(prefix)
                records = {item.key: item.value for item in snapshot.items}
                await self._publish(records)
                changes = self._store.watch_prefix(prefix, start_revision=snapshot.revision + 1)
                async for change in changes:
                    if change.value is None:
                        records.pop(change.key, None)
                    else:
                        records[change.key] = change.value
                    await self._publish(records)
            except errors.SfmeshError as exc:  # compaction or etcd unreachable
                log.warning("node watch restarting: %s", exc.message)
                await asyncio.sleep(RETRY_DELAY)

    async def _publish(self, records: dict[bytes, bytes]) -> None:
        peers = underlay_peers(records.values(), self._node)
        while peers != self._applied:
            try:
                await self._apply(peers)
            except DataPlaneError as exc:
                log.warning("cannot set the VXLAN peers: %s", exc)
                await asyncio.sleep(RETRY_DELAY)
            else:
                self._applied = peers
                log.info("vxlan peers", extra={"fields": {"peers": sorted(peers)}})
