"""The secret user tokens are signed with, one for every api replica.

A token `POST /auth` issued on one api must pass on every other, so the
secret lives in etcd (`/sfmesh/v1/secret/user-tokens`), not in a file each
host would need copied by hand. The first api to start writes it with a
create-only transaction; every other start reads it, and api replicas
starting together agree on whichever write landed. An api upgraded from a
build that kept `<state>/jwt.secret` publishes that file's secret, so the
tokens already handed out stay valid.

Whoever may read etcd may read this secret, as it may read every record:
with TLS that is the mesh's own services, by their certificates.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from services.common import errors
from services.common.store import Put, Store, key

SECRET_KEY = key("secret", "user-tokens")
ATTEMPTS = 5
"""Reads and create-only writes tried before giving up: a write refused
means another replica's landed, which the next read finds."""


async def user_token_secret(store: Store, legacy_file: Path) -> str:
    """The secret shared by every api replica, made on the first start
    (from `legacy_file` when that file exists). Raises errors.Unavailable
    when etcd cannot be reached."""
    for _ in range(ATTEMPTS):
        stored = await store.get(SECRET_KEY)
        if stored is not None:
            return stored.value.decode()
        secret = _legacy(legacy_file) or secrets.token_urlsafe(32)
        if await store.commit([Put(SECRET_KEY, secret.encode(), 0)]):
            return secret
    raise errors.Unavailable("the user-token secret kept changing in etcd")


def _legacy(path: Path) -> str | None:
    """The secret an earlier build kept in the state folder, if any."""
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
