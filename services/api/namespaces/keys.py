"""Namespace keys: bcrypt hashes in etcd, and the `system` namespace that the
first start creates from the key kept in `<state>/system.key` (and every
start gives that key back, should the namespace have lost it)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt
from sfmesh.v1 import records_pb2

from services.api.namespaces import rules
from services.api.namespaces.store import NamespaceStore
from services.api.sizes import KEY_SECRET_BYTES
from services.common import errors
from services.common.secrets import load_or_create_secret

SYSTEM = "system"
SYSTEM_KEY_NAME = "system"
RESTORED_KEY_NAME = "system-key-file"
"""The name the key file's key is restored under when `system` is taken."""

log = logging.getLogger("sfmesh.api.keys")


def new_key_record(name: str, secret: str) -> records_pb2.KeyRecord:
    """A key record holding the bcrypt hash of `secret` and a fresh nonce."""
    return records_pb2.KeyRecord(
        name=name,
        bcrypt_hash=bcrypt.hashpw(secret.encode(), bcrypt.gensalt()),
        nonce=secrets.token_hex(8),
    )


async def make_key(name: str, secret: str) -> records_pb2.KeyRecord:
    """`new_key_record`, with bcrypt run in a thread so the event loop goes on."""
    return await asyncio.to_thread(new_key_record, name, secret)


async def matching_key(
    namespace: records_pb2.NamespaceRecord, secret: str
) -> records_pb2.KeyRecord | None:
    """The key of `namespace` whose secret is `secret`, or None; bcrypt runs
    in a thread so the event loop goes on. (Logins go through `KeyChecker`.)"""
    return await asyncio.to_thread(_matching, namespace, secret)


def _matching(namespace: records_pb2.NamespaceRecord, secret: str) -> records_pb2.KeyRecord | None:
    """bcrypt is slow on purpose. A secret longer than bcrypt reads matches
    nothing (no key could hold it)."""
    candidate = secret.encode()
    if len(candidate) > KEY_SECRET_BYTES:
        return None
    for key in namespace.keys:
        if bcrypt.checkpw(candidate, key.bcrypt_hash):
            return key
    return None


KEY_CHECKERS = 2
"""Threads that check login keys: bcrypt takes at most this many cores,
whatever arrives."""
KEY_CHECKS_WAITING = 32
"""Logins that may wait for a checker; beyond them a login is refused at
once (503, Retry-After), costing no bcrypt."""


class KeyChecker:
    """Checks the keys of logins (`POST /auth`) on threads of its own, a
    bounded number at a time: a flood of wrong keys, each costing a bcrypt per
    key of the namespace, cannot take every core or the api's other threads."""

    def __init__(self, threads: int = KEY_CHECKERS, waiting: int = KEY_CHECKS_WAITING) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="key-check")
        self._limit = threads + waiting
        self._admitted = 0

    async def matching_key(
        self, namespace: records_pb2.NamespaceRecord, secret: str
    ) -> records_pb2.KeyRecord | None:
        """`matching_key`, or 503 `LOGINS_BUSY` when too many wait already."""
        if self._admitted >= self._limit:
            raise errors.Unavailable(
                "too many logins are being checked; retry shortly",
                reason="LOGINS_BUSY",
                retry_after=1,
            )
        self._admitted += 1
        loop = asyncio.get_running_loop()
        check = self._pool.submit(_matching, namespace, secret)
        # counted until the check really ends, even when its caller left
        check.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(check)

    def _release(self) -> None:
        self._admitted -= 1


async def ensure_system_namespace(namespaces: NamespaceStore, state_dir: Path) -> None:
    """Create the `system` namespace on first start, keyed by `<state>/system.key`;
    on later starts, restore that key when the namespace no longer has it.

    The key file (mode 0600) is the only plain copy; etcd holds its hash. It
    stays a way back in: whatever became of the namespace's keys, a start
    puts the file's key back (as `system`, or as `system-key-file` when a
    key called `system` now holds another secret) and logs that it did.
    Without the file, an existing namespace is left as it is.
    """
    path = state_dir / "system.key"
    stored = await namespaces.get_stored(SYSTEM)
    if stored is None:
        secret = load_or_create_secret(path, nbytes=24)
        record = records_pb2.NamespaceRecord(
            name=SYSTEM,
            state="created",
            keys=[await make_key(SYSTEM_KEY_NAME, secret)],
        )
        await namespaces.create(record)
        return
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        return
    if await matching_key(stored.record, secret) is not None:
        return
    key = await make_key(SYSTEM_KEY_NAME, secret)
    checked = {existing.bcrypt_hash for existing in stored.record.keys}

    def restore(record: records_pb2.NamespaceRecord) -> None:
        # On a compare-and-swap retry, another api starting beside this one
        # may have put the key back meanwhile. Only keys added since the
        # check above are tried: bcrypt blocks the loop, before the api serves.
        added = [existing for existing in record.keys if existing.bcrypt_hash not in checked]
        if any(bcrypt.checkpw(secret.encode(), existing.bcrypt_hash) for existing in added):
            raise _AlreadyRestored
        taken = any(existing.name == SYSTEM_KEY_NAME for existing in record.keys)
        key.name = RESTORED_KEY_NAME if taken else SYSTEM_KEY_NAME
        rules.put_key(record, key)

    try:
        await namespaces.update(stored, restore)
    except _AlreadyRestored:
        return
    log.warning("restored the key of %s to the system namespace as %r", path, key.name)


class _AlreadyRestored(Exception):
    """Another writer put the key file's key back first: nothing to write."""
