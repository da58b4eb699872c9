"""Where the leader of a replicated role is, for its clients.

The leader writes its address at `/sfmesh/v1/leader/<role>` with a lease of
its own (the scheduler's `leadership.py` campaigns for it), so the key names
the leader while it lives and vanishes a lease TTL after it dies. A client
reads the key, falls back to the address it was configured with when there
is none (one replica, or a deployment that predates elections), and reads
it again when the key changes or the leader it called fails it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from services.common import errors
from services.common.store import Item, Store, key

SCHEDULER = "scheduler"
"""The role whose replicas elect a leader today."""


def leader_key(role: str) -> bytes:
    """The key naming the leader of `role`, e.g. `scheduler`."""
    return key("leader", role)


@dataclass(frozen=True)
class Leader:
    """A role's leader as read at one etcd revision."""

    address: str
    """host:port to call: the key's value, or the configured fallback."""
    revision: int
    """The etcd revision it was read at; changes after it make it stale."""
    mod_revision: int = 0
    """The key's own revision; 0 when there is no key (nobody leads)."""


def leader_of(item: Item | None, fallback: str, revision: int) -> Leader:
    """The leader a read of the key found, or `fallback` when nobody leads. Pure."""
    if item is None:
        return Leader(fallback, revision)
    return Leader(item.value.decode(), revision, item.mod_revision)


class LeaderLookup:
    """Reads, and waits for changes of, the leader key of one role."""

    def __init__(self, store: Store, role: str, fallback: str) -> None:
        self._store = store
        self._key = leader_key(role)
        self._fallback = fallback

    async def read(self) -> Leader:
        """The current leader (a linearizable read)."""
        found = await self._store.snapshot(self._key)
        item = next((item for item in found.items if item.key == self._key), None)
        return leader_of(item, self._fallback, found.revision)

    async def changed(self, since: Leader) -> None:
        """Return once the key has changed after `since` was read: another
        leader, or none. Waits through etcd outages."""
        watch = self._store.watch_prefix(self._key, start_revision=since.revision + 1)
        async with contextlib.aclosing(watch):
            try:
                async for change in watch:
                    if change.key == self._key:
                        return
            except errors.Aborted:  # compacted past `since`: it may well have changed
                return
