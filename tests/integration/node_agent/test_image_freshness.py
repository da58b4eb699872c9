"""Freshness checks of image URLs already fetched (services/node_agent/
freshness.py, images.py's refresh, source_checks.py, disk_images.py)
against a real etcd and real loopback HTTP servers whose Last-Modified and
Content-Length change between fetches: a cache request checks every time (unchanged keeps the
version, changed adds one from the same GET, an HTTP error or a failed
download keeps the cached version, with Shaken Fist's events); an instance
create boots the version present and has the source checked in the
background at most once per interval, claimed in etcd."""

from __future__ import annotations

import asyncio
import email.utils
import functools
import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sfmesh.v1 import artifact_pb2, event_pb2, records_pb2

from guests.serve import ImageServer
from services.common.store import Put, Store, key
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.disk_images import DiskImages
from services.node_agent.fetch_policy import Endpoint, parse_networks
from services.node_agent.images import DEFAULT_MAX_BYTES, ImageCache
from tests.event_sinks import RecordedEvents

NODE = "freshness-node"
A = artifact_pb2
T1 = 1_700_000_000
T2 = T1 + 3600
AUDIT = event_pb2.EVENT_TYPE_AUDIT


async def no_endpoints() -> tuple[Endpoint, ...]:
    return ()


class Recorder(RecordedEvents):
    """The artifact events the node agent emits, each checked to name this node."""

    def of(self, uuid: str) -> list[tuple[str, dict[str, Any]]]:
        """(message, extra without the node) of artifact `uuid`'s events."""
        found = []
        for event in self.events:
            if event.object_uuid == uuid:
                assert event.object_type == "artifact"
                shown = dict(event.extra)
                assert shown.pop("node") == NODE
                found.append((event.message, shown))
        return found

    def audited(self, uuid: str) -> list[str]:
        return [e.message for e in self.events if e.object_uuid == uuid and e.event_type == AUDIT]


class Served:
    """An ImageServer over a folder of this test's, whose files' times are
    the Last-Modified it answers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = ImageServer(folder)

    def publish(self, name: str, data: bytes, modified: float, *, delay: float = 0.0) -> str:
        url = self.server.publish(name, data, delay=delay)
        self.touch(name, modified)
        return url

    def touch(self, name: str, modified: float) -> None:
        os.utime(self.folder / name, (modified, modified))

    def hits(self, name: str) -> int:
        return self.server.hits(name)


class Scripted:
    """A loopback HTTP server answering every GET as told: `body`, a
    Last-Modified of `modified` (none when None), and only the first `cut`
    bytes of the body (all when None) before it closes."""

    def __init__(self) -> None:
        self.body = b""
        self.modified: float | None = None
        self.cut: int | None = None
        self.hits = 0
        self._server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_ScriptedHandler, scripted=self)
        )
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/scripted.raw"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _ScriptedHandler(BaseHTTPRequestHandler):
    def __init__(self, *args: Any, scripted: Scripted, **kwargs: Any) -> None:
        self.scripted = scripted
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        told = self.scripted
        told.hits += 1
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", str(len(told.body)))
        if told.modified is not None:
            self.send_header("Last-Modified", email.utils.formatdate(told.modified, usegmt=True))
        self.end_headers()
        self.wfile.write(told.body if told.cut is None else told.body[: told.cut])
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class Harness:
    """DiskImages of node NODE over a real etcd, its blobs under a tmp folder."""

    def __init__(
        self,
        store: Store,
        root: Path,
        *,
        check_interval: float = 300.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.store = store
        self.records = BlobRecords(store)
        self.blobs = LocalBlobStore(root / "blobs")
        self.events = Recorder()
        images = ImageCache(
            root / "images",
            {},
            blobs=self.blobs,
            endpoints=no_endpoints,
            allowed=parse_networks("127.0.0.0/8"),
            max_bytes=max_bytes,
        )
        self.disks = DiskImages(
            node=NODE,
            images=images,
            blobs=self.blobs,
            records=self.records,
            events=self.events,
            check_interval=check_interval,
        )

    async def artifact(self, source_url: str) -> str:
        name = str(uuid.uuid4())
        record = records_pb2.ArtifactRecord(
            artifact=A.Artifact(
                uuid=name,
                state=A.ARTIFACT_STATE_INITIAL,
                artifact_type=A.ARTIFACT_TYPE_IMAGE,
                source_url=source_url,
                namespace="system",
                max_versions=3,
            ),
            created_at=1.0,
        )
        assert await self.store.commit([Put(key("artifact", name), record.SerializeToString(), 0)])
        return name

    async def read(self, name: str) -> records_pb2.ArtifactRecord:
        stored = await self.records.artifact(name)
        assert stored is not None
        return stored.record

    async def blob(self, name: str) -> A.Blob:
        stored = await self.records.blob(name)
        assert stored is not None
        return stored.record.blob

    async def change(self, name: str, **fields: Any) -> None:
        """Set fields of the artifact's record (`source_url` and `state` of
        its view), by compare-and-swap: a check's claim may write too."""
        while True:
            stored = await self.records.artifact(name)
            assert stored is not None
            for field, value in fields.items():
                view = field in ("source_url", "state")
                setattr(stored.record.artifact if view else stored.record, field, value)
            value = stored.record.SerializeToString()
            if await self.store.commit([Put(key("artifact", name), value, stored.mod_revision)]):
                return

    async def cache(self, name: str) -> records_pb2.ArtifactRecord:
        """`POST /artifacts` as the api writes it, answered by this node."""
        await self.change(name, fetch_node=NODE, fetch_requested_at=time.time())
        await self.disks.answer_cache_request(name)
        record = await self.read(name)
        assert record.fetch_node == ""
        return record

    def files(self) -> list[Path]:
        return sorted(path for path in self.blobs.root.rglob("*") if path.is_file())

    async def versions_become(self, name: str, count: int) -> records_pb2.ArtifactRecord:
        for _ in range(200):
            record = await self.read(name)
            if len(record.versions) == count:
                return record
            await asyncio.sleep(0.05)
        raise AssertionError(f"artifact {name} never had {count} versions")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    folder = tmp_path / "served"
    folder.mkdir()
    server = Served(folder)
    yield server
    server.server.close()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.close()


@pytest.fixture
async def store(etcd: str) -> AsyncIterator[Store]:
    opened = Store(etcd)
    yield opened
    await opened.close()


@pytest.fixture
async def harness(store: Store, tmp_path: Path) -> AsyncIterator[Harness]:
    made = Harness(store, tmp_path)
    yield made
    await made.disks.close()


def blob_uuids(record: records_pb2.ArtifactRecord) -> list[str]:
    return [version.blob_uuid for version in record.versions]


async def test_an_unchanged_url_is_checked_and_its_version_kept(
    harness: Harness, served: Served
) -> None:
    url = served.publish("same.raw", b"a" * 1000, T1)
    name = await harness.artifact(url)
    first = await harness.cache(name)
    assert first.artifact.state == A.ARTIFACT_STATE_CREATED
    blob = await harness.blob(first.versions[0].blob_uuid)
    assert (blob.modified, blob.size) == (T1, 1000)
    assert first.checked_at >= blob.fetched_at > 0

    before = time.time()
    again = await harness.cache(name)
    assert served.hits("same.raw") == 2  # the check's GET, closed after its headers
    assert blob_uuids(again) == blob_uuids(first)
    assert again.last_index == 1
    assert again.checked_at >= before
    assert len(harness.files()) == 1
    assert harness.events.messages(name) == ["artifact fetch complete"] * 2


@pytest.mark.parametrize(
    ("second", "modified", "reasons"),
    [
        (
            b"b" * 1000,
            T2,
            [("image requires fetch, Last-Modified changed", {"old": T1, "new": T2})],
        ),
        (
            b"a" * 2000,
            T1,
            [("image requires fetch, Content-Length changed", {"old": 1000, "new": 2000})],
        ),
        (
            b"c" * 10,
            T2,
            [
                ("image requires fetch, Last-Modified changed", {"old": T1, "new": T2}),
                ("image requires fetch, Content-Length changed", {"old": 1000, "new": 10}),
            ],
        ),
    ],
    ids=["last-modified", "content-length", "both"],
)
async def test_a_changed_url_becomes_a_new_version_from_the_same_get(
    harness: Harness,
    served: Served,
    second: bytes,
    modified: int,
    reasons: list[tuple[str, dict[str, Any]]],
) -> None:
    url = served.publish("changing.raw", b"a" * 1000, T1)
    name = await harness.artifact(url)
    first = await harness.cache(name)
    served.publish("changing.raw", second, modified)

    after = await harness.cache(name)
    assert served.hits("changing.raw") == 2  # the check's answer was the download
    assert after.artifact.state == A.ARTIFACT_STATE_CREATED
    assert [v.index for v in after.versions] == [1, 2]
    assert after.versions[0].blob_uuid == first.versions[0].blob_uuid
    new = await harness.blob(after.versions[1].blob_uuid)
    assert (new.modified, new.size, new.sha512) == (
        modified,
        len(second),
        hashlib.sha512(second).hexdigest(),
    )
    assert harness.blobs.path(new.uuid).read_bytes() == second
    events = harness.events.of(name)
    assert events[1:-1] == reasons
    assert events[-1] == ("artifact fetch complete", {"blob_uuid": new.uuid, "url": url})
    assert harness.events.audited(name) == [message for message, _ in reasons]

    # Checked again: the new version's Last-Modified and size hold.
    await harness.cache(name)
    assert served.hits("changing.raw") == 3
    assert len((await harness.read(name)).versions) == 2


async def test_a_touched_file_of_the_same_content_adds_no_version_and_is_then_fresh(
    harness: Harness, served: Served
) -> None:
    url = served.publish("touched.raw", b"t" * 700, T1)
    name = await harness.artifact(url)
    first = await harness.cache(name)
    served.touch("touched.raw", T2)

    again = await harness.cache(name)
    assert blob_uuids(again) == blob_uuids(first)
    blob = await harness.blob(first.versions[0].blob_uuid)
    assert blob.modified == T2  # the adopted blob takes the source's Last-Modified
    assert len(harness.files()) == 1  # the download it repeated is not kept
    assert "image requires fetch, Last-Modified changed" in harness.events.messages(name)

    await harness.cache(name)
    assert served.hits("touched.raw") == 3
    assert harness.events.messages(name).count("image requires fetch, Last-Modified changed") == 1


@pytest.mark.parametrize("failure", ["404", "refused"])
async def test_an_http_error_on_the_check_keeps_the_cached_version(
    harness: Harness, served: Served, failure: str
) -> None:
    url = served.publish("failing.raw", b"f" * 100, T1)
    name = await harness.artifact(url)
    first = await harness.cache(name)
    if failure == "404":
        (served.folder / "failing.raw").unlink()
        error = f"fetching {url}: HTTP 404 Not Found"
    else:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{unused.getsockname()[1]}/failing.raw"
        await harness.change(name, source_url=url)
        error = f"fetching {url}: [Errno 111] Connection refused"

    before = time.time()
    after = await harness.cache(name)
    assert (after.artifact.state, blob_uuids(after)) == (
        A.ARTIFACT_STATE_CREATED,
        blob_uuids(first),
    )
    assert not after.artifact.HasField("error_message")
    assert after.checked_at >= before
    assert harness.events.of(name)[1:] == [
        ("image fetch had HTTP error, not fetching image", {"error": error})
    ]
    assert harness.events.audited(name) == ["image fetch had HTTP error, not fetching image"]


async def test_a_download_over_the_limit_after_the_check_keeps_the_cached_version(
    store: Store, tmp_path: Path, served: Served
) -> None:
    harness = Harness(store, tmp_path, max_bytes=2048)
    url = served.publish("growing.raw", b"g" * 1000, T1)
    name = await harness.artifact(url)
    first = await harness.cache(name)
    served.publish("growing.raw", b"g" * 4096, T2)

    after = await harness.cache(name)
    assert (after.artifact.state, blob_uuids(after)) == (
        A.ARTIFACT_STATE_CREATED,
        blob_uuids(first),
    )
    assert not after.artifact.HasField("error_message")
    assert harness.events.messages(name)[1:] == [
        "image requires fetch, Last-Modified changed",
        "image requires fetch, Content-Length changed",
        "updating image failed, using already cached version",
    ]
    assert harness.events.of(name)[-1][1] == {
        "message": f"fetching {url}: 4096 bytes is over the limit (2048 bytes)"
    }
    assert harness.files() == [harness.blobs.path(first.versions[0].blob_uuid)]  # no partial


async def test_a_body_cut_short_after_the_check_keeps_the_cached_version(
    harness: Harness, scripted: Scripted
) -> None:
    scripted.body, scripted.modified = b"s" * 5000, T1
    name = await harness.artifact(scripted.url)
    first = await harness.cache(name)
    scripted.body, scripted.modified, scripted.cut = b"S" * 5000, T2, 1234

    after = await harness.cache(name)
    assert (after.artifact.state, blob_uuids(after)) == (
        A.ARTIFACT_STATE_CREATED,
        blob_uuids(first),
    )
    message, extra = harness.events.of(name)[-1]
    assert message == "updating image failed, using already cached version"
    assert extra["message"].startswith(f"fetching {scripted.url}: ")
    assert harness.files() == [harness.blobs.path(first.versions[0].blob_uuid)]


async def test_an_answer_without_last_modified_is_fetched_at_each_check_adding_no_version(
    harness: Harness, scripted: Scripted
) -> None:
    scripted.body = b"n" * 3000
    name = await harness.artifact(scripted.url)
    first = await harness.cache(name)
    blob = await harness.blob(first.versions[0].blob_uuid)
    assert blob.modified == pytest.approx(blob.fetched_at)  # the fetch time stands in

    after = await harness.cache(name)
    assert scripted.hits == 2
    assert blob_uuids(after) == blob_uuids(first)
    reason, extra = harness.events.of(name)[1]
    assert (reason, extra["new"]) == ("image requires fetch, Last-Modified changed", None)
    assert len(harness.files()) == 1


async def test_a_create_boots_the_cached_version_and_checks_in_the_background(
    store: Store, tmp_path: Path, served: Served
) -> None:
    harness = Harness(store, tmp_path, check_interval=0)
    try:
        url = served.publish("booted.raw", b"1" * 512, T1)
        name = await harness.artifact(url)
        first = await harness.disks.from_artifact(name)
        served.publish("booted.raw", b"2" * 512, T2, delay=1.5)  # changed, and slow

        started = time.monotonic()
        again = await harness.disks.from_artifact(name)
        assert time.monotonic() - started < 1.0  # did not wait for the check
        assert again == first
        record = await harness.versions_become(name, 2)
        assert served.hits("booted.raw") == 2
        newest = await harness.disks.from_artifact(name)
        assert newest.blob_uuid == record.versions[-1].blob_uuid != first.blob_uuid
        assert newest.path.read_bytes() == b"2" * 512
        assert harness.events.messages(name) == [
            "artifact fetch complete",
            "image requires fetch, Last-Modified changed",
            "artifact fetch complete",
        ]
    finally:
        await harness.disks.close()


async def test_a_create_checks_only_once_the_interval_has_passed(
    store: Store, tmp_path: Path, served: Served
) -> None:
    harness = Harness(store, tmp_path, check_interval=3600)
    try:
        url = served.publish("interval.raw", b"i" * 512, T1)
        name = await harness.artifact(url)
        first = await harness.disks.from_artifact(name)  # a download: read just now
        served.publish("interval.raw", b"I" * 512, T2)
        for _ in range(3):
            assert await harness.disks.from_artifact(name) == first
        await asyncio.sleep(0.5)
        assert served.hits("interval.raw") == 1

        await harness.change(name, checked_at=time.time() - 3600)
        assert await harness.disks.from_artifact(name) == first
        await harness.versions_become(name, 2)
        assert served.hits("interval.raw") == 2
        assert (await harness.read(name)).checked_at > time.time() - 60
    finally:
        await harness.disks.close()


async def test_one_create_check_is_claimed_per_interval_across_nodes(
    harness: Harness, store: Store, served: Served
) -> None:
    name = await harness.artifact(served.publish("claimed.raw", b"c" * 512, T1))
    await harness.cache(name)
    await harness.change(name, checked_at=0.0)
    others = [BlobRecords(store) for _ in range(4)]
    now = time.time()
    claims = await asyncio.gather(
        *(records.claim_check(name, now, 300.0) for records in [harness.records, *others])
    )
    assert [claim is not None for claim in claims].count(True) == 1
    assert (await harness.read(name)).checked_at == now
    assert await harness.records.claim_check(name, now + 299, 300.0) is None
    assert await harness.records.claim_check(name, now + 300, 300.0) is not None
    without_version = await harness.artifact(served.server.url("never.raw"))
    assert await harness.records.claim_check(without_version, now, 0.0) is None


async def test_a_check_finishing_after_its_artifact_was_deleted_records_nothing(
    store: Store, tmp_path: Path, served: Served
) -> None:
    harness = Harness(store, tmp_path, check_interval=0)
    try:
        url = served.publish("deleted.raw", b"d" * 512, T1)
        name = await harness.artifact(url)
        first = await harness.disks.from_artifact(name)
        served.publish("deleted.raw", b"D" * 512, T2, delay=1.0)
        await harness.disks.from_artifact(name)  # its check waits on the slow server
        for _ in range(100):
            if served.hits("deleted.raw") == 2:
                break
            await asyncio.sleep(0.02)
        await harness.change(name, state=A.ARTIFACT_STATE_DELETED)
        for _ in range(100):
            if "image requires fetch, Last-Modified changed" in harness.events.messages(name):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # the download ends, and is dropped
        assert harness.files() == [first.path]
        assert blob_uuids(await harness.read(name)) == [first.blob_uuid]
        assert "artifact fetch complete" not in harness.events.messages(name)[1:]
    finally:
        await harness.disks.close()


async def test_stopping_cancels_a_background_check(
    store: Store, tmp_path: Path, served: Served
) -> None:
    harness = Harness(store, tmp_path, check_interval=0)
    url = served.publish("stopped.raw", b"x" * 512, T1)
    name = await harness.artifact(url)
    await harness.disks.from_artifact(name)
    served.publish("stopped.raw", b"y" * 512, T2, delay=5.0)
    await harness.disks.from_artifact(name)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await harness.disks.close()
    assert time.monotonic() - started < 1.0
    assert len((await harness.read(name)).versions) == 1
