"""services/node_agent/blob_store.py on a real folder: exclusive partial
files, the rename only once whole, sha512 while writing, nothing left by a
failed write that passes for a whole blob."""

from __future__ import annotations

import hashlib
import os
import stat
import time
import uuid
from pathlib import Path

import pytest

from services.node_agent.blob_store import (
    STALE_PARTIAL_SECONDS,
    SWEPT_PARTIAL_SECONDS,
    BlobBusy,
    BlobExists,
    LocalBlobStore,
)


def files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_a_committed_blob_is_whole_readable_and_hashed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    name = str(uuid.uuid4())
    with store.writer(name) as out:
        out.write(b"first ")
        assert store.path(name).exists() is False  # only the partial so far
        assert out.partial.read_bytes() == b"first "  # checks may read it at once
        out.write(b"second")
        path = out.commit()
    assert path == tmp_path / "blobs" / name[:2] / name
    assert path.read_bytes() == b"first second"
    assert out.size == 12
    assert out.sha512() == hashlib.sha512(b"first second").hexdigest()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    for folder in (tmp_path / "blobs", path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert store.holds(name, 12)
    assert not store.holds(name, 11)
    assert files(tmp_path) == [f"blobs/{name[:2]}/{name}"]


def test_a_write_that_fails_leaves_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    name = str(uuid.uuid4())
    with pytest.raises(RuntimeError), store.writer(name) as out:
        out.write(b"half")
        raise RuntimeError("connection lost")
    assert files(tmp_path) == []
    assert not store.holds(name, 4)


def test_a_write_never_committed_leaves_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    name = str(uuid.uuid4())
    with store.writer(name) as out:
        out.write(b"unchecked")
    assert files(tmp_path) == []


def test_a_partial_file_has_one_writer(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    name = str(uuid.uuid4())
    with store.writer(name) as first:
        first.write(b"mine")
        with pytest.raises(BlobBusy, match="being written by another writer"), store.writer(name):
            pass
        assert first.partial.read_bytes() == b"mine"  # the refused writer touched nothing
        first.commit()
    assert store.path(name).read_bytes() == b"mine"


def test_a_stale_partial_file_is_taken_over(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    name = str(uuid.uuid4())
    left = store.path(name).with_name(f"{name}.partial")
    left.parent.mkdir(parents=True)
    left.write_bytes(b"crashed writer's")
    old = time.time() - STALE_PARTIAL_SECONDS - 1
    os.utime(left, (old, old))
    with store.writer(name) as out:
        out.write(b"fresh")
        out.commit()
    assert store.path(name).read_bytes() == b"fresh"
    assert files(tmp_path) == [f"{name[:2]}/{name}"]


def test_link_gives_the_content_a_second_name(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with store.writer(first) as out:
        out.write(b"shared")
        out.commit()
    assert store.link(first, second) == store.path(second)
    assert store.path(second).read_bytes() == b"shared"
    store.remove(first)
    store.remove(first)  # absent: no error
    assert files(tmp_path) == [f"{second[:2]}/{second}"]


@pytest.mark.parametrize("name", ["", "a", "../x", "ab/cd", ".hidden"])
def test_path_refuses_what_is_no_blob_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a blob uuid"):
        LocalBlobStore(tmp_path).path(name)


def test_adopt_renames_a_whole_file_into_a_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    source = tmp_path / "uploads" / "u"
    source.parent.mkdir()
    source.write_bytes(b"uploaded")
    source.chmod(0o600)
    inode = source.stat().st_ino
    name = str(uuid.uuid4())
    assert store.adopt(name, source) == store.path(name)
    assert store.path(name).read_bytes() == b"uploaded"
    assert store.path(name).stat().st_ino == inode  # renamed, not copied
    assert stat.S_IMODE(store.path(name).stat().st_mode) == 0o644
    assert not source.exists()
    assert files(tmp_path) == [f"blobs/{name[:2]}/{name}"]


def test_adopt_never_replaces_a_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    name = str(uuid.uuid4())
    with store.writer(name) as out:
        out.write(b"first")
        out.commit()
    source = tmp_path / "second"
    source.write_bytes(b"second")
    with pytest.raises(BlobExists):
        store.adopt(name, source)
    assert store.path(name).read_bytes() == b"first"
    assert source.read_bytes() == b"second"
    assert files(tmp_path / "blobs") == [f"{name[:2]}/{name}"]


def test_adopt_waits_for_no_live_writer(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    name = str(uuid.uuid4())
    source = tmp_path / "upload"
    source.write_bytes(b"late")
    with store.writer(name) as first:
        with pytest.raises(BlobBusy):
            store.adopt(name, source)
        first.write(b"writer's")
    assert source.exists()  # refused: kept for another try


def test_sweep_partials_removes_only_old_ones(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    old, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    for name in (old, fresh):
        partial = store.path(name).with_name(f"{name}.partial")
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(b"left")
    day_ago = time.time() - SWEPT_PARTIAL_SECONDS - 1
    os.utime(store.path(old).with_name(f"{old}.partial"), (day_ago, day_ago))
    with store.writer(str(uuid.uuid4())):  # a live writer's partial stays
        assert store.sweep_partials() == [store.path(old).with_name(f"{old}.partial")]
    assert files(tmp_path) == [f"{fresh[:2]}/{fresh}.partial"]
