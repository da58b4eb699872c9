"""The user-token secret shared through etcd (services/api/token_secret.py),
on an etcd of this module's own: replicas agree, a legacy file is published,
and a secret once stored is never replaced."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.api.token_secret import SECRET_KEY, user_token_secret
from services.common.store import Delete, Store
from tests.meshes import started_etcd


@pytest.fixture(scope="module")
def own_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with started_etcd(tmp_path_factory.mktemp("etcd-token-secret")) as address:
        yield address


@pytest.fixture
async def store(own_etcd: str) -> AsyncIterator[Store]:
    """A store whose etcd holds no user-token secret yet."""
    opened = Store(own_etcd)
    assert await opened.commit([Delete(SECRET_KEY)])
    yield opened
    await opened.close()


async def test_replicas_starting_together_agree(store: Store, tmp_path: Path) -> None:
    found = await asyncio.gather(
        *(user_token_secret(store, tmp_path / f"replica{i}" / "jwt.secret") for i in range(8))
    )
    assert len(set(found)) == 1 and len(found[0]) >= 32
    stored = await store.get(SECRET_KEY)
    assert stored is not None and stored.value.decode() == found[0]


async def test_a_legacy_file_is_published(store: Store, tmp_path: Path) -> None:
    legacy = tmp_path / "jwt.secret"
    legacy.write_text("the-secret-of-an-earlier-build\n")
    assert await user_token_secret(store, legacy) == "the-secret-of-an-earlier-build"
    assert await user_token_secret(store, tmp_path / "absent") == "the-secret-of-an-earlier-build"


async def test_a_stored_secret_wins_over_a_file(store: Store, tmp_path: Path) -> None:
    first = await user_token_secret(store, tmp_path / "absent")
    other = tmp_path / "jwt.secret"
    other.write_text("another-host-s-file\n")
    assert await user_token_secret(store, other) == first
