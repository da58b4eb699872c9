"""Token revocation (instances reference §5.3): a user token stands only while
its namespace is live and the key it came from still exists with the nonce
the token carries. Deleting or rotating a key, or deleting the namespace,
revokes its tokens.

The check runs on every user RPC, so it reads an in-memory copy of every
namespace record rather than etcd: a snapshot of `/sfmesh/v1/namespace/`,
kept current by a watch from the snapshot's revision. A change is seen within
milliseconds of its write. Until the first snapshot is loaded, and while a new
one is being taken after a watch failure, the check reads etcd directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sfmesh.v1 import records_pb2

from services.api.namespaces import rules
from services.api.namespaces.store import NamespaceStore
from services.common import errors
from services.common.tokens import Caller

log = logging.getLogger("sfmesh.api.revocation")

RETRY_START = 0.2
RETRY_MAX = 5.0


class Revocation:
    """The api's `check` hook for the AuthInterceptor."""

    def __init__(self, namespaces: NamespaceStore) -> None:
        self._namespaces = namespaces
        self._records: dict[str, records_pb2.NamespaceRecord] = {}
        self._synced = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin following the namespace records (call inside the event loop)."""
        self._task = asyncio.create_task(self._follow(), name="namespace-revocation")

    async def close(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def synced(self) -> bool:
        """Whether checks are served from memory."""
        return self._synced

    async def check(self, who: Caller) -> None:
        """Raise 401 when the token behind `who` has been revoked.

        The mesh's internal identity carries no key and is never revoked.
        """
        if who.internal:
            return
        if self._synced:
            record = self._records.get(who.namespace)
        else:
            record = await self._namespaces.get(who.namespace)
        if not rules.token_is_current(record, who.key_name, who.nonce):
            raise errors.Unauthenticated("token revoked", reason="TOKEN_REVOKED")

    async def _follow(self) -> None:
        """Snapshot, then watch; start over after a compaction or an outage."""
        retry = RETRY_START
        while True:
            try:
                records, revision = await self._namespaces.snapshot()
                self._records = {record.name: record for record in records}
                self._synced = True
                retry = RETRY_START
                async for name, record in self._namespaces.changes(after=revision):
                    if record is None:
                        self._records.pop(name, None)
                    else:
                        self._records[name] = record
            except (errors.Aborted, errors.Unavailable) as exc:
                log.warning("namespace watch restarts", extra={"fields": {"error": exc.message}})
            except Exception:
                log.exception("namespace watch failed; restarting")
            finally:
                self._synced = False
            await asyncio.sleep(retry)
            retry = min(retry * 2, RETRY_MAX)
