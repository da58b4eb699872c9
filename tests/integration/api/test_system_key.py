"""The `system` namespace and `<state>/system.key` across api starts
(services/api/namespaces/keys.py), on an etcd of this module's own: these tests take
the system namespace's keys away, which the shared etcd's users rely on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sfmesh.v1 import records_pb2

from services.api.namespaces.keys import (
    RESTORED_KEY_NAME,
    SYSTEM,
    ensure_system_namespace,
    make_key,
    matching_key,
)
from services.api.namespaces.store import NamespaceStore
from services.common.store import Delete, Store, key
from tests.meshes import started_etcd


@pytest.fixture(scope="module")
def own_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An etcd of this module's own; its client address."""
    with started_etcd(tmp_path_factory.mktemp("etcd-system-key")) as address:
        yield address


@pytest.fixture
async def namespaces(own_etcd: str) -> AsyncIterator[NamespaceStore]:
    """A namespace store over an etcd with no system namespace yet."""
    store = Store(own_etcd)
    assert await store.commit([Delete(key("namespace", SYSTEM))])
    yield NamespaceStore(store)
    await store.close()


async def take_keys(namespaces: NamespaceStore, *keep: records_pb2.KeyRecord) -> None:
    """Replace the system namespace's keys behind the api's back."""
    stored = await namespaces.get_stored(SYSTEM)
    assert stored is not None

    def replace(record: records_pb2.NamespaceRecord) -> None:
        del record.keys[:]
        record.keys.extend(keep)

    await namespaces.update(stored, replace)


async def system(namespaces: NamespaceStore) -> records_pb2.NamespaceRecord:
    record = await namespaces.get(SYSTEM)
    assert record is not None
    return record


async def test_first_start_creates_system_from_a_new_key_file(
    namespaces: NamespaceStore, tmp_path: Path
) -> None:
    await ensure_system_namespace(namespaces, tmp_path)
    secret = (tmp_path / "system.key").read_text().strip()
    found = await matching_key(await system(namespaces), secret)
    assert found is not None and found.name == "system"


async def test_a_start_restores_the_key_file_after_the_last_key_went(
    namespaces: NamespaceStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_system_namespace(namespaces, tmp_path)
    secret = (tmp_path / "system.key").read_text().strip()
    await take_keys(namespaces)  # as DELETE .../keys/system once could
    assert not (await system(namespaces)).keys
    with caplog.at_level(logging.WARNING, logger="sfmesh.api.keys"):
        await ensure_system_namespace(namespaces, tmp_path)
    restored = await matching_key(await system(namespaces), secret)
    assert restored is not None and restored.name == "system"
    assert "restored the key of" in caplog.text
    caplog.clear()
    await ensure_system_namespace(namespaces, tmp_path)  # now in place: nothing to do
    assert [k.name for k in (await system(namespaces)).keys] == ["system"]
    assert not caplog.text


async def test_a_rotated_system_key_is_kept_beside_the_restored_one(
    namespaces: NamespaceStore, tmp_path: Path
) -> None:
    await ensure_system_namespace(namespaces, tmp_path)
    secret = (tmp_path / "system.key").read_text().strip()
    rotated = await make_key("system", "a-new-secret")
    await take_keys(namespaces, rotated)
    await ensure_system_namespace(namespaces, tmp_path)
    record = await system(namespaces)
    assert [k.name for k in record.keys] == ["system", RESTORED_KEY_NAME]
    assert record.keys[0] == rotated
    found = await matching_key(record, secret)
    assert found is not None and found.name == RESTORED_KEY_NAME


async def test_without_the_key_file_an_existing_namespace_is_left_alone(
    namespaces: NamespaceStore, tmp_path: Path
) -> None:
    await ensure_system_namespace(namespaces, tmp_path)
    (tmp_path / "system.key").unlink()
    await take_keys(namespaces)
    await ensure_system_namespace(namespaces, tmp_path)
    assert not (await system(namespaces)).keys
    assert not (tmp_path / "system.key").exists()


class Together(NamespaceStore):
    """A namespace store whose writers wait for each other before the first
    write, so every one of them has read the record before any writes."""

    def __init__(self, store: Store, barrier: asyncio.Barrier) -> None:
        super().__init__(store)
        self._barrier = barrier

    async def update(
        self,
        stored: NamespaceStore.Stored,
        change: Callable[[records_pb2.NamespaceRecord], None],
    ) -> records_pb2.NamespaceRecord:
        await self._barrier.wait()
        return await super().update(stored, change)


async def test_two_apis_starting_together_restore_the_key_once(
    namespaces: NamespaceStore, own_etcd: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The second writer's compare-and-swap retry finds the key the first
    one restored, and writes nothing: no `system-key-file` beside it."""
    await ensure_system_namespace(namespaces, tmp_path)
    secret = (tmp_path / "system.key").read_text().strip()
    await take_keys(namespaces)
    store = Store(own_etcd)
    together = Together(store, asyncio.Barrier(2))
    with caplog.at_level(logging.WARNING, logger="sfmesh.api.keys"):
        await asyncio.gather(
            ensure_system_namespace(together, tmp_path),
            ensure_system_namespace(together, tmp_path),
        )
    await store.close()
    record = await system(namespaces)
    assert [k.name for k in record.keys] == ["system"]
    found = await matching_key(record, secret)
    assert found is not None and found.name == "system"
    assert caplog.text.count("restored the key of") == 1
