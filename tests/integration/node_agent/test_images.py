"""services/node_agent/images.py against a real loopback HTTP server (the
`image_server` fixture): downloads, the cache, deduplication, failures, and
the fetch policy (loopback refused unless allowed, redirects re-checked, the
mesh's endpoints, read from config and a real etcd with its members' client
and peer URLs, refused always)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import ssl
import stat
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from ipaddress import ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sfmesh.v1 import records_pb2, scheduler_service_pb2

from guests.bootsector import boot_sector
from services.common import errors
from services.common.config import MeshConfig
from services.common.store import Delete, Put, Store, key
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.fetch_policy import Endpoint, parse_networks
from services.node_agent.images import CachedImage, ImageCache, ImageError
from services.node_agent.mesh_endpoints import (
    MeshEndpoints,
    configured_endpoints,
    on_this_host,
    resolve_endpoints,
)
from tests.metric_samples import sample

if TYPE_CHECKING:
    from tests.conftest import ImageServer

NO_SHORTHANDS: dict[str, str] = {}
LOOPBACK = parse_networks("127.0.0.0/8")


async def no_endpoints() -> tuple[Endpoint, ...]:
    return ()


def loopback_cache(
    root: Path, shorthands: Mapping[str, str] = NO_SHORTHANDS, **options: Any
) -> ImageCache:
    """An ImageCache that may fetch from loopback, where the test servers
    are; its blobs under `root/blobs`."""
    return cache(root, shorthands, allowed=LOOPBACK, **options)


def cache(root: Path, shorthands: Mapping[str, str] = NO_SHORTHANDS, **options: Any) -> ImageCache:
    """An ImageCache with its index under `root` and its blobs under
    `root/blobs`, refusing loopback unless `allowed` says otherwise."""
    options.setdefault("endpoints", no_endpoints)
    return ImageCache(root, shorthands, blobs=LocalBlobStore(root / "blobs"), **options)


def files_under(root: Path) -> list[Path]:
    """Every file below ``root``, folders left out."""
    return sorted(path for path in root.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def qcow2_image(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An empty 1 MiB qcow2 image made by qemu-img."""
    path = tmp_path_factory.mktemp("qcow2") / "empty.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1M"], check=True)
    return path.read_bytes()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_fetch_downloads_into_a_readable_blob(
    image_server: ImageServer, boot_sector_url: str, tmp_path: Path
) -> None:
    before = time.time()
    image = await loopback_cache(tmp_path / "cache").fetch(boot_sector_url)
    data = boot_sector()
    blob = image.blob_uuid
    assert uuid.UUID(blob).version == 4
    assert image == CachedImage(
        url=boot_sector_url,
        path=tmp_path / "cache" / "blobs" / blob[:2] / blob,
        blob_uuid=blob,
        sha512=hashlib.sha512(data).hexdigest(),
        size=512,
        fmt="raw",
        modified=image.modified,
        fetched_at=image.fetched_at,
    )
    assert before <= image.fetched_at <= time.time()
    assert image.modified == int(image.modified) <= image.fetched_at  # from Last-Modified
    assert image.path.read_bytes() == data
    assert stat.S_IMODE(image.path.stat().st_mode) == 0o644
    for folder in ("", "blobs", f"blobs/{blob[:2]}", "urls"):
        assert stat.S_IMODE((tmp_path / "cache" / folder).stat().st_mode) == 0o755
    index = files_under(tmp_path / "cache" / "urls")
    assert len(index) == 1
    assert stat.S_IMODE(index[0].stat().st_mode) == 0o644


async def test_a_fetched_url_is_served_from_the_cache(
    image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.publish("cached.raw", b"cached" * 100)
    cache = loopback_cache(tmp_path)
    fetched = sample("sfmesh_node_fetched_bytes_total", kind="image")
    first = await cache.fetch(url)
    assert await cache.fetch(url) == first
    assert await loopback_cache(tmp_path).fetch(url) == first
    assert image_server.hits("cached.raw") == 1
    assert sample("sfmesh_node_fetched_bytes_total", kind="image") == fetched + 600


async def test_shorthands_resolve_through_the_table(
    image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.publish("short.raw", b"short")
    cache = loopback_cache(tmp_path, {"tiny:1": url})
    assert (await cache.fetch("tiny:1")).url == url
    assert (await cache.fetch(url)).path.read_bytes() == b"short"
    assert image_server.hits("short.raw") == 1


async def test_a_missing_blob_is_fetched_again(image_server: ImageServer, tmp_path: Path) -> None:
    url = image_server.publish("evicted.raw", b"evicted")
    cache = loopback_cache(tmp_path)
    (await cache.fetch(url)).path.unlink()
    image = await cache.fetch(url)
    assert image.path.read_bytes() == b"evicted"
    assert image_server.hits("evicted.raw") == 2


async def test_two_urls_with_one_content_are_two_blobs_with_one_sha512(
    image_server: ImageServer, tmp_path: Path
) -> None:
    """Each download is a blob of its own; sharing content is decided by
    sha512 in the artifact records (disk_images.py), not by file name."""
    a = image_server.publish("same-a.raw", b"same content")
    b = image_server.publish("same-b.raw", b"same content")
    cache = loopback_cache(tmp_path)
    first, second = await cache.fetch(a), await cache.fetch(b)
    assert (first.url, second.url) == (a, b)
    assert first.blob_uuid != second.blob_uuid
    assert first.sha512 == second.sha512 == hashlib.sha512(b"same content").hexdigest()
    assert len(files_under(tmp_path / "blobs")) == 2


async def test_download_always_fetches_a_new_blob(
    image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.publish("download-twice.raw", b"twice")
    cache = loopback_cache(tmp_path)
    first = await cache.download(url)
    second = await cache.download(url)
    assert first.blob_uuid != second.blob_uuid
    assert first.path.read_bytes() == second.path.read_bytes() == b"twice"
    assert image_server.hits("download-twice.raw") == 2
    assert not (tmp_path / "urls").exists()  # download keeps no URL index


async def test_concurrent_downloads_share_one(image_server: ImageServer, tmp_path: Path) -> None:
    url = image_server.publish("download-concurrent.raw", os.urandom(2 * 1024 * 1024))
    cache = loopback_cache(tmp_path)
    images = await asyncio.gather(*(cache.download(url) for _ in range(5)))
    assert len({image.blob_uuid for image in images}) == 1
    assert image_server.hits("download-concurrent.raw") == 1


async def test_concurrent_fetches_download_once(image_server: ImageServer, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    url = image_server.publish("concurrent.raw", data)
    cache = loopback_cache(tmp_path)
    images = await asyncio.gather(*(cache.fetch(url) for _ in range(10)))
    assert len(set(images)) == 1
    assert images[0].sha512 == hashlib.sha512(data).hexdigest()
    assert image_server.hits("concurrent.raw") == 1


async def test_a_cancelled_caller_does_not_cancel_the_download(
    image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.publish("cancelled.raw", os.urandom(1024 * 1024))
    cache = loopback_cache(tmp_path)
    impatient = asyncio.create_task(cache.fetch(url))
    await asyncio.sleep(0)
    impatient.cancel()
    image = await cache.fetch(url)
    assert impatient.cancelled()
    assert image.path.stat().st_size == 1024 * 1024
    assert image_server.hits("cancelled.raw") == 1


async def test_concurrent_fetches_share_a_failure(
    image_server: ImageServer, tmp_path: Path
) -> None:
    cache = loopback_cache(tmp_path)
    url = image_server.url("shared-failure.raw")
    results = await asyncio.gather(*(cache.fetch(url) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(result, ImageError) for result in results)
    assert len({str(result) for result in results}) == 1
    assert image_server.hits("shared-failure.raw") == 1


async def test_not_found_names_the_url_and_leaves_nothing(
    image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.url("missing.raw")
    with pytest.raises(ImageError) as raised:
        await loopback_cache(tmp_path).fetch(url)
    assert str(raised.value) == f"fetching {url}: HTTP 404 Not Found"
    assert files_under(tmp_path) == []


async def test_a_failed_fetch_is_retried(image_server: ImageServer, tmp_path: Path) -> None:
    url = image_server.url("late.raw")
    cache = loopback_cache(tmp_path)
    with pytest.raises(ImageError, match="404"):
        await cache.fetch(url)
    image_server.publish("late.raw", b"late")
    assert (await cache.fetch(url)).path.read_bytes() == b"late"
    assert image_server.hits("late.raw") == 2


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (
            b"Content-Length: 1000\r\n\r\n" + bytes(10),
            "the connection closed after 10 of 1000 bytes",
        ),
        (b"Transfer-Encoding: chunked\r\n\r\na\r\n01234", "the connection closed before"),
    ],
    ids=["content-length", "chunked"],
)
async def test_a_truncated_body_leaves_nothing(answer: bytes, why: str, tmp_path: Path) -> None:
    async def truncate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n" + answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(truncate, "127.0.0.1", 0)
    async with server:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/short.raw"
        with pytest.raises(ImageError) as raised:
            await loopback_cache(tmp_path).fetch(url)
    assert str(raised.value).startswith(f"fetching {url}: {why}")
    assert files_under(tmp_path) == []


async def test_connection_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x.raw"
    with pytest.raises(ImageError, match=f"fetching {url}: .*Connection refused"):
        await loopback_cache(tmp_path).fetch(url)
    assert files_under(tmp_path) == []


async def test_a_silent_server_times_out(silent_port: int, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{silent_port}/x.raw"
    with pytest.raises(ImageError, match=f"fetching {url}: timed out after 0.2 s"):
        await loopback_cache(tmp_path, timeout=0.2).fetch(url)
    assert files_under(tmp_path) == []


async def test_other_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="'file:///etc/hostname'"):
        await loopback_cache(tmp_path).fetch("file:///etc/hostname")


async def test_progress_reports_a_few_times_up_to_the_size(
    image_server: ImageServer, tmp_path: Path
) -> None:
    size = 5 * 1024 * 1024
    url = image_server.publish("progress.raw", bytes(size))
    calls: list[tuple[str, int, int | None]] = []
    cache = loopback_cache(tmp_path, progress=lambda *call: calls.append(call))
    await cache.fetch(url)
    assert calls[0] == (url, 0, size)
    assert calls[-1] == (url, size, size)
    done = [call[1] for call in calls]
    assert done == sorted(set(done))
    assert 3 <= len(calls) <= 12


async def test_a_failing_progress_callback_does_not_stop_the_download(
    image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.publish("progress-fails.raw", b"data")

    def progress(url: str, done: int, total: int | None) -> None:
        raise RuntimeError("progress broke")

    image = await loopback_cache(tmp_path, progress=progress).fetch(url)
    assert image.path.read_bytes() == b"data"


async def test_qcow2_is_detected(
    image_server: ImageServer, qcow2_image: bytes, tmp_path: Path
) -> None:
    url = image_server.publish("empty.qcow2", qcow2_image)
    image = await loopback_cache(tmp_path).fetch(url)
    assert (image.fmt, image.size) == ("qcow2", len(qcow2_image))


@pytest.mark.parametrize("refers_to", ["backing file", "data file"])
async def test_a_qcow2_referring_to_a_host_file_is_refused(
    image_server: ImageServer, tmp_path: Path, refers_to: str
) -> None:
    made = tmp_path / "made.qcow2"
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"\0" * 65536)
    options = (
        ["-b", str(secret), "-F", "raw"]
        if refers_to == "backing file"
        else ["-o", f"data_file={secret}"]
    )
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", *options, str(made), "64K"]
    await asyncio.to_thread(subprocess.run, argv, check=True)
    url = image_server.publish(f"refers-{uuid.uuid4().hex}.qcow2", made.read_bytes())
    cache_root = tmp_path / "cache"
    with pytest.raises(ImageError, match="refer to other files"):
        await loopback_cache(cache_root).fetch(url)
    assert files_under(cache_root) == []  # nothing entered the cache, no partial left


async def serve_raw(answer: Callable[[asyncio.StreamWriter], Awaitable[None]]) -> Any:
    """A loopback server that answers every request with `answer(writer)`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            await answer(writer)
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_an_image_over_the_limit_is_refused_and_leaves_nothing(
    image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.publish("big.raw", bytes(3000))
    with pytest.raises(ImageError, match=f"fetching {url}: 3000 bytes is over the limit"):
        await loopback_cache(tmp_path, max_bytes=1000).fetch(url)

    async def endless(writer: asyncio.StreamWriter) -> None:  # chunked: no length first
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(10):
            writer.write(b"3e8\r\n" + bytes(1000) + b"\r\n")
            await writer.drain()

    async with await serve_raw(endless) as server:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/endless.raw"
        with pytest.raises(ImageError, match=rf"fetching {url}: over the limit \(2500 bytes\)"):
            await loopback_cache(tmp_path, max_bytes=2500).fetch(url)
    assert files_under(tmp_path) == []


async def test_a_dripping_download_ends_at_the_deadline(tmp_path: Path) -> None:
    async def drip(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with await serve_raw(drip) as server:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/drip.raw"
        with pytest.raises(ImageError, match=rf"fetching {url}: not done after 0.5 s \(\d+ bytes"):
            await loopback_cache(tmp_path, timeout=5, deadline=0.5).fetch(url)
    assert files_under(tmp_path) == []


async def drip_headers(writer: asyncio.StreamWriter) -> None:
    """A `serve_raw` answer: a status line, then a header byte every 50 ms
    (for 10 s at most), each well within any per-read timeout."""
    writer.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
    for _ in range(200):
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.05)


async def test_dripping_headers_end_at_the_deadline(tmp_path: Path) -> None:
    async with await serve_raw(drip_headers) as server:
        url = served_at(server, "/drip-headers.raw")
        started = time.monotonic()
        with pytest.raises(ImageError) as raised:
            await loopback_cache(tmp_path, timeout=5, deadline=0.5).fetch(url)
    assert str(raised.value) == f"fetching {url}: not done after 0.5 s (no body yet)"
    assert time.monotonic() - started < 2
    assert files_under(tmp_path) == []


async def test_the_deadline_spans_every_redirect(tmp_path: Path) -> None:
    async def slow_redirect(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.2)
        await redirect("/again")(writer)

    async with await serve_raw(slow_redirect) as server:
        url = served_at(server, "/slow-redirects.raw")
        with pytest.raises(ImageError) as raised:
            await loopback_cache(tmp_path, timeout=5, deadline=0.5).fetch(url)
    assert str(raised.value) == f"fetching {url}: not done after 0.5 s (no body yet)"


async def test_slow_downloads_never_hold_up_other_threaded_work(tmp_path: Path) -> None:
    """As many dripping downloads as asyncio's default executor has threads:
    another ``to_thread`` job still runs at once."""
    default_threads = min(32, (os.cpu_count() or 1) + 4)
    async with await serve_raw(drip_headers) as server:
        cache = loopback_cache(tmp_path, timeout=5, deadline=2)
        fetches = [
            asyncio.create_task(cache.fetch(served_at(server, f"/drip-{n}.raw")))
            for n in range(default_threads)
        ]
        await asyncio.sleep(0.2)  # every download has started
        started = time.monotonic()
        await asyncio.to_thread(time.sleep, 0)
        waited = time.monotonic() - started
        results = await asyncio.gather(*fetches, return_exceptions=True)
    assert waited < 0.5
    assert all(isinstance(result, ImageError) for result in results)
    assert files_under(tmp_path) == []


def redirect(location: str) -> Callable[[asyncio.StreamWriter], Awaitable[None]]:
    """A `serve_raw` answer: 302 to ``location``."""

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(
            f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
        )
        await writer.drain()

    return answer


def served_at(server: Any, path: str) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{path}"


@pytest.fixture
async def mesh_endpoints(etcd: str, tmp_path: Path) -> AsyncIterator[MeshEndpoints]:
    """The endpoints of a mesh whose etcd is the `etcd` fixture, read as the
    node agent reads them (its settings, plus node records in that etcd)."""
    store = Store(etcd)
    mesh = MeshConfig(
        tmp_path,
        etcd=(etcd,),
        api="127.0.0.1:13010",
        scheduler="127.0.0.1:13011",
        eventlog="127.0.0.1:13012",
    )
    yield MeshEndpoints(store, configured_endpoints(mesh, "127.0.0.1:13020", "127.0.0.1:13020"))
    await store.close()


async def test_loopback_is_refused_unless_allowed(
    image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.publish("policy-loopback.raw", b"loopback")
    strict = cache(tmp_path)
    with pytest.raises(ImageError) as raised:
        await strict.fetch(url)
    assert str(raised.value) == (
        f"image URL {url} refused: 127.0.0.1 is in 127.0.0.0/8 (loopback), "
        "not an allowed image network"
    )
    assert files_under(tmp_path) == []
    assert image_server.hits("policy-loopback.raw") == 0
    assert (await loopback_cache(tmp_path).fetch(url)).path.read_bytes() == b"loopback"


LOOPBACK_V4 = "127.0.0.1 is in 127.0.0.0/8 (loopback)"
MAPPED = ip_address("::ffff:127.0.0.1")
"""As Python prints it (::ffff:7f00:1 before 3.13)."""


@pytest.mark.parametrize(
    ("host", "whys"),
    [
        ("2130706433", {LOOPBACK_V4}),
        ("0177.0.0.1", {LOOPBACK_V4}),
        ("0x7f.1", {LOOPBACK_V4}),
        ("u:p@127.0.0.1", {LOOPBACK_V4}),
        ("[::ffff:127.0.0.1]", {f"{MAPPED} (127.0.0.1) is in 127.0.0.0/8 (loopback)"}),
        ("localhost", {LOOPBACK_V4, "::1 is in ::1/128 (loopback)"}),
    ],
    ids=["decimal", "octal", "hex", "userinfo", "ipv4-mapped", "localhost"],
)
async def test_other_spellings_of_loopback_are_refused(
    host: str, whys: set[str], image_server: ImageServer, tmp_path: Path
) -> None:
    published = image_server.publish("spelled.raw", b"loopback by another name")
    url = f"http://{host}:{urllib.parse.urlsplit(published).port}/spelled.raw"
    strict = cache(tmp_path)
    with pytest.raises(ImageError) as raised:
        await strict.fetch(url)
    refused = {f"image URL {url} refused: {why}, not an allowed image network" for why in whys}
    assert str(raised.value) in refused
    assert image_server.hits("spelled.raw") == 0
    assert files_under(tmp_path) == []


async def test_proxy_settings_are_not_used(
    image_server: ImageServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxied: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        proxied.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nthe proxy!")
        writer.close()

    url = image_server.publish("unproxied.raw", b"direct")
    async with await asyncio.start_server(proxy, "127.0.0.1", 0) as server:
        for variable in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(variable, served_at(server, ""))
        strict = cache(tmp_path / "strict")
        with pytest.raises(ImageError, match=f"image URL {url} refused: 127.0.0.1 is in"):
            await strict.fetch(url)
        image = await loopback_cache(tmp_path / "allowed").fetch(url)
    assert image.path.read_bytes() == b"direct"
    assert proxied == []


@pytest.mark.parametrize(
    ("location", "why"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is in 169.254.0.0/16 (link-local), not an allowed image network",
        ),
        ("http://[::1]:9/x.raw", "::1 is in ::1/128 (loopback), not an allowed image network"),
        (
            "http://10.1.2.3/x.raw",
            "10.1.2.3 is in 10.0.0.0/8 (private), not an allowed image network",
        ),
        ("file:///etc/passwd", "only http(s) URLs with a host are fetched"),
    ],
    ids=["metadata", "ipv6-loopback", "private", "file"],
)
async def test_a_redirect_to_a_refused_destination_is_refused(
    location: str, why: str, tmp_path: Path
) -> None:
    async with await serve_raw(redirect(location)) as server:
        url = served_at(server, "/redirect.raw")
        with pytest.raises(ImageError) as raised:
            await loopback_cache(tmp_path).fetch(url)
    assert str(raised.value) == f"image URL {url} refused: redirected to {location}: {why}"
    assert files_under(tmp_path) == []


async def test_a_redirect_to_an_allowed_server_is_followed(
    image_server: ImageServer, tmp_path: Path
) -> None:
    target = image_server.publish("redirected.raw", b"redirected")
    async with await serve_raw(redirect(target)) as server:
        url = served_at(server, "/start.raw")
        image = await loopback_cache(tmp_path).fetch(url)
    assert (image.url, image.path.read_bytes()) == (url, b"redirected")
    assert image_server.hits("redirected.raw") == 1


async def test_redirects_are_bounded(tmp_path: Path) -> None:
    async with await serve_raw(redirect("/again")) as server:
        url = served_at(server, "/loop.raw")
        with pytest.raises(ImageError) as raised:
            await loopback_cache(tmp_path).fetch(url)
    assert str(raised.value) == f"fetching {url}: more than 5 redirects"
    assert files_under(tmp_path) == []


async def test_the_mesh_etcd_is_refused_even_with_loopback_allowed(
    etcd: str, mesh_endpoints: MeshEndpoints, tmp_path: Path
) -> None:
    port = etcd.rpartition(":")[2]
    images = cache(tmp_path, endpoints=mesh_endpoints.read, allowed=LOOPBACK)
    url = f"http://{etcd}/version"
    with pytest.raises(ImageError) as raised:
        await images.fetch(url)
    assert str(raised.value) == f"image URL {url} refused: {etcd} is the mesh's etcd"
    by_name = f"http://localhost:{port}/version"
    with pytest.raises(ImageError, match=rf"image URL {by_name} refused: .*the mesh's etcd"):
        await images.fetch(by_name)
    async with await serve_raw(redirect(url)) as server:
        redirected = served_at(server, "/to-etcd")
        with pytest.raises(ImageError) as raised:
            await images.fetch(redirected)
    assert str(raised.value) == (
        f"image URL {redirected} refused: redirected to {url}: {etcd} is the mesh's etcd"
    )
    assert files_under(tmp_path) == []


async def test_every_etcd_member_url_is_refused_even_with_loopback_allowed(
    etcd: str, tmp_path: Path
) -> None:
    store = Store(etcd)
    try:
        (member,) = await store.members()
        images = cache(tmp_path, endpoints=MeshEndpoints(store, ()).read, allowed=LOOPBACK)
        for kind, urls in (("peer", member.peer_urls), ("client", member.client_urls)):
            address = urllib.parse.urlsplit(urls[0]).netloc
            url = f"http://{address}/members"
            with pytest.raises(ImageError) as raised:
                await images.fetch(url)
            assert str(raised.value) == (
                f"image URL {url} refused: {address} is the mesh's etcd member {member.name} "
                f"({kind} URL)"
            )
    finally:
        await store.close()
    assert files_under(tmp_path) == []


async def test_a_published_node_agent_is_refused(
    etcd: str, mesh_endpoints: MeshEndpoints, image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.publish("node-agent.raw", b"not an image")
    address = urllib.parse.urlsplit(url).netloc
    node = f"fetch-policy-{uuid.uuid4().hex[:8]}"
    record = records_pb2.NodeRecord(
        name=node, facts=scheduler_service_pb2.HypervisorFacts(node=node, address=address)
    )
    store = Store(etcd)
    await store.commit([Put(key("node", node), record.SerializeToString())])
    try:
        images = cache(tmp_path, endpoints=mesh_endpoints.read, allowed=LOOPBACK)
        with pytest.raises(ImageError) as raised:
            await images.fetch(url)
    finally:
        await store.commit([Delete(key("node", node))])
        await store.close()
    assert (
        str(raised.value) == f"image URL {url} refused: {address} is the node agent of node {node}"
    )
    assert image_server.hits("node-agent.raw") == 0
    assert files_under(tmp_path) == []


async def test_the_connection_keeps_the_url_name_for_host_and_tls(tmp_path: Path) -> None:
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")
        writer.close()

    async with await asyncio.start_server(record, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await loopback_cache(tmp_path).fetch(f"http://localhost:{port}/named.raw")
    assert f"\r\nHost: localhost:{port}\r\n".encode() in heads[0]

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"]
    argv += ["-keyout", str(key), "-out", str(cert), "-days", "1"]
    await asyncio.to_thread(subprocess.run, argv, check=True, capture_output=True)
    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, context: names.append(name)
    async with await asyncio.start_server(record, "127.0.0.1", 0, ssl=context) as server:
        url = f"https://localhost:{server.sockets[0].getsockname()[1]}/named.raw"
        with pytest.raises(ImageError, match=f"fetching {url}: .*CERTIFICATE_VERIFY_FAILED"):
            await loopback_cache(tmp_path / "tls").fetch(url)
    assert names == ["localhost"]


def test_this_hosts_addresses_are_found_by_binding() -> None:
    assert on_this_host(ip_address("127.0.0.1"))
    assert not on_this_host(ip_address("203.0.113.77"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.77", 9))  # no packet: the kernel picks a source
        except OSError:
            pytest.skip("no route off this host")
        source = probe.getsockname()[0]
    assert on_this_host(ip_address(source))


def test_endpoints_resolve() -> None:
    found = resolve_endpoints([("a", "0.0.0.0:13020"), ("b", "localhost:13010")])
    assert [(e.name, e.port, e.local) for e in found] == [("a", 13020, True), ("b", 13010, True)]
    assert found[0].addresses == {ip_address("0.0.0.0")}
    assert ip_address("127.0.0.1") in found[1].addresses


async def test_an_endpoint_that_does_not_resolve_stops_the_fetch(
    etcd: str, image_server: ImageServer, tmp_path: Path
) -> None:
    url = image_server.publish("unresolved-endpoint.raw", b"fetched unchecked")
    store = Store(etcd)
    configured = [("the mesh's api", "no-such-host.invalid:13010")]
    images = cache(tmp_path, endpoints=MeshEndpoints(store, configured).read, allowed=LOOPBACK)
    try:
        with pytest.raises(errors.Unavailable) as raised:  # retried later, not an ImageError
            await images.fetch(url)
    finally:
        await store.close()
    assert raised.value.reason == "MESH_ENDPOINT_UNRESOLVED"
    assert raised.value.message.startswith(
        "cannot resolve the mesh's api at 'no-such-host.invalid:13010' ("
    )
    assert raised.value.message.endswith("no image is fetched until every mesh endpoint resolves")
    assert image_server.hits("unresolved-endpoint.raw") == 0
    assert files_under(tmp_path) == []


async def test_a_slow_dns_answer_ends_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """getaddrinfo has no timeout: a resolver that takes 3 s to answer holds
    the download only until its 0.5 s deadline."""
    looked_up = socket.getaddrinfo

    def slow(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.example":
            time.sleep(3)
        return looked_up(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    url = "http://slow-dns.example/image.raw"
    started = time.monotonic()
    with pytest.raises(ImageError) as raised:
        await loopback_cache(tmp_path, timeout=5, deadline=0.5).fetch(url)
    assert str(raised.value) == f"fetching {url}: not done after 0.5 s (no body yet)"
    assert time.monotonic() - started < 1.5
    assert files_under(tmp_path) == []
