"""The secrets the api signs with, one of each for every api replica: user
tokens', and browser console tickets' (`instances/console_tickets.py`).

A token `POST /auth` issued on one api must pass on every other, so the
secret lives in etcd (`/sfmesh/v1/secret/user-tokens`), not in a file each
host would need copied by hand. The first api to start writes it with a
create-only transaction; every other start reads it, and api replicas
starting together agree on whichever write landed. An api upgraded from a
build that kept `<state>/jwt.secret` publishes that file's secret, so the
tokens already handed out stay valid.

Console tickets have a secret of their own
(`/sfmesh/v1/secret/console-tickets`), made the same way, so that no ticket
can pass for a user token nor a token for a ticket.

Whoever may read etcd may read these secrets, as it may read every record:
with TLS that is the mesh's own services, by their certificates.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from services.common import errors
from services.common.store import Put, Store, key

SECRET_KEY = key("secret", "user-tokens")
CONSOLE_SECRET_KEY = key("secret", "console-tickets")
ATTEMPTS = 5
"""Reads and create-only writes tried before giving up: a write refused
means another replica's landed, which the next read finds."""


async def user_token_secret(store: Store, legacy_file: Path) -> str:
    """The user-token secret shared by every api replica, made on the first
    start (from `legacy_file` when that file exists). Raises
    errors.Unavailable when etcd cannot be reached."""
    return await _shared_secret(store, SECRET_KEY, lambda: _legacy(legacy_file))


async def console_ticket_secret(store: Store) -> str:
    """The console-ticket secret shared by every api replica, made on the
    first start."""
    return await _shared_secret(store, CONSOLE_SECRET_KEY, lambda: None)


async def _shared_secret(store: Store, at: bytes, legacy: Callable[[], str | None]) -> str:
    """The secret at `at`, written create-only by the first replica."""
    for _ in range(ATTEMPTS):
        stored = await store.get(at)
        if stored is not None:
            return stored.value.decode()
        secret = legacy() or secrets.token_urlsafe(32)
        if await store.commit([Put(at, secret.encode(), 0)]):
            return secret
    raise errors.Unavailable(f"the secret {at.decode()} kept changing in etcd")


def _legacy(path: Path) -> str | None:
    """The secret an earlier build kept in the state folder, if any."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
