"""The node agent's image downloads: disk images fetched over http(s) into
this node's blob store (``blob_store.py``), each download a new blob named by
a fresh uuid, its sha512 computed on the way, so that qemu can use it as a
disk base.

``download`` always fetches (an image artifact's record says whether a fetch
is needed: ``disk_images.py``); ``refresh`` checks whether a URL fetched
already still serves what its newest blob recorded (``freshness.py``) and,
when not, downloads the same answer's body. ``fetch``, for instances whose records name
no artifact (written before artifacts existed), keeps a local index under
the cache root (folders 0755, files 0644):

    urls/<sha256(url)>.json what a URL gave: {"url", "blob_uuid", "sha512",
                            "size", "fmt", "modified", "fetched_at"}

and never fetches again a URL whose entry's blob is still whole. A download
goes only where the fetch policy lets it (``fetch_policy.py``,
``image_http.py``): never to the mesh's own endpoints, nor to loopback,
private and other special ranges unless the operator allows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import json
import logging
import os
import subprocess
import tempfile
import time
import urllib.parse
import uuid as uuids
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO

from services.node_agent.blob_store import BlobBusy, BlobStore
from services.node_agent.fetch_policy import SCHEMES, Endpoint, FetchPolicy, IPNetwork
from services.node_agent.freshness import (
    Recorded,
    Stale,
    parse_last_modified,
    parse_length,
    read_answer,
    stale_reasons,
)
from services.node_agent.image_http import FetchFailed, Overdue, Refused, open_image
from services.node_agent.metrics import IMAGE_BYTES

log = logging.getLogger("sfmesh.node_agent.images")

DEFAULT_SHORTHANDS: Mapping[str, str] = MappingProxyType(
    {
        "debian:11": "https://cloud.debian.org/images/cloud/bullseye/latest/"
        "debian-11-generic-amd64.qcow2",
        "debian:12": "https://cloud.debian.org/images/cloud/bookworm/latest/"
        "debian-12-generic-amd64.qcow2",
    }
)
"""Image shorthands accepted as an instance's disk base, and their URLs."""

QCOW2_MAGIC = b"QFI\xfb"
DEFAULT_MAX_BYTES = 64 * 2**30
"""The largest image fetched, unless the node agent is told otherwise."""
DEFAULT_DEADLINE = 3600.0
"""Seconds a download may take, unless the node agent is told otherwise."""
DOWNLOAD_THREADS = 4
"""Downloads at once; more wait for one to end. They run on threads of
their own, so slow servers never hold up the node agent's other blocking
work (asyncio's default threads)."""

ProgressCallback = Callable[[str, int, int | None], None]
"""progress(url, bytes_so_far, total_or_None)."""
EndpointSource = Callable[[], Awaitable[Sequence[Endpoint]]]
"""The mesh's endpoints, read when a download starts."""
StaleCallback = Callable[[tuple[Stale, ...]], None]
"""stale(reasons): a checked URL is fetched again, for these reasons."""

_CHUNK = 1024 * 1024
_REPORT_MIN_STEP = 1024 * 1024
_REPORT_STEP_UNKNOWN_TOTAL = 8 * 1024 * 1024
_DIR_MODE = 0o755
_FILE_MODE = 0o644


class ImageError(Exception):
    """A base that cannot be resolved or fetched; the message says why."""


class CheckFailed(ImageError):
    """A freshness check got no answer to compare (an HTTP error status, a
    refusal, a connection that failed or timed out): nothing was fetched."""


@dataclass(frozen=True)
class CachedImage:
    """An image downloaded into the blob store."""

    url: str
    path: Path
    """The blob's file."""
    blob_uuid: str
    """The blob's name in the blob store."""
    sha512: str
    """Hex sha512 of the content."""
    size: int
    """Bytes."""
    fmt: str
    """Either "raw" or "qcow2", from the file's magic bytes."""
    modified: float
    """The answer's Last-Modified, epoch seconds; the fetch time without one."""
    fetched_at: float
    """When the download ended, epoch seconds."""


@dataclass(frozen=True)
class Check:
    """A freshness check made by a download (``ImageCache.refresh``)."""

    recorded: Recorded
    """What the newest blob recorded of its source."""
    stale: Callable[[tuple[Stale, ...]], None]
    """Called (on the download's thread) before a stale source is downloaded."""


def resolve_base(base: str, shorthands: Mapping[str, str]) -> str:
    """The URL of a disk base: a shorthand (``debian:11``) through the table,
    an http(s) URL unchanged; anything else raises ImageError."""
    url = shorthands.get(base, base)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as error:
        raise ImageError(f"image {base!r} is not a valid URL: {error}") from error
    if parts.scheme in SCHEMES and parts.netloc:
        return url
    if base in shorthands:
        raise ImageError(f"image shorthand {base!r} maps to {url!r}, not an http(s) URL")
    known = ", ".join(sorted(shorthands)) or "none"
    raise ImageError(
        f"unknown image {base!r}: expected an http(s) URL or a shorthand (known: {known})"
    )


def detect_format(head: bytes) -> str:
    """An image's format from its first bytes: "qcow2" for qcow2's magic, else "raw"."""
    return "qcow2" if head.startswith(QCOW2_MAGIC) else "raw"


class ImageCache:
    """Image downloads into ``blobs``, with the URL index of ``fetch`` under
    ``root``.

    Concurrent downloads (and concurrent fetches) of one URL share one. ``progress`` is called
    on the event loop a few times per download (at the start, about every
    10 % or 8 MiB, at the end); an exception from it is logged and ignored.
    ``timeout`` bounds the connection and each read, in seconds;
    ``max_bytes`` the size of an image, and ``deadline`` the seconds a whole
    download may take, from its first connection (redirects and headers
    included) to its last byte: a server that drips, or sends without end,
    fails the fetch rather than holding a create or filling the disk. Every download
    is held to a policy read as it starts: ``endpoints`` (the mesh's own,
    always refused) and ``allowed``, the networks exempt from the refused
    ranges of ``fetch_policy``.
    """

    def __init__(
        self,
        root: Path,
        shorthands: Mapping[str, str],
        *,
        blobs: BlobStore,
        endpoints: EndpointSource,
        allowed: Sequence[IPNetwork] = (),
        progress: ProgressCallback | None = None,
        timeout: float = 30.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        self._endpoints = endpoints
        self._allowed = tuple(allowed)
        self._max_bytes = max_bytes
        self._deadline = deadline
        self._root = root
        self._blobs = blobs
        self._urls = root / "urls"
        self._shorthands = shorthands
        self._progress = progress
        self._timeout = timeout
        self._inflight: dict[tuple[str, str], asyncio.Task[CachedImage]] = {}
        self._downloads = ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="image-download")

    def resolve(self, base: str) -> str:
        """The URL a base stands for (shorthands through the table). Raises
        ImageError."""
        return resolve_base(base, self._shorthands)

    async def fetch(self, base: str) -> CachedImage:
        """The image of ``base`` (shorthand or URL) as last fetched here by
        this method, downloading it unless its URL index entry's blob is
        still whole. Raises ImageError."""
        url = resolve_base(base, self._shorthands)
        return await self._shared(("fetch", url), lambda: self._fetch(url))

    async def download(self, base: str) -> CachedImage:
        """``base`` (shorthand or URL) downloaded into a new blob. Raises
        ImageError."""
        url = resolve_base(base, self._shorthands)
        return await self._shared(("download", url), lambda: self._download_new(url))

    async def refresh(
        self, base: str, recorded: Recorded, stale: StaleCallback | None = None
    ) -> CachedImage | None:
        """Check ``base`` (shorthand or URL) against what its newest blob
        ``recorded``: None when its Last-Modified and Content-Length match;
        otherwise ``stale(reasons)`` is called (on the event loop) and the
        same answer's body is downloaded into a new blob. Raises CheckFailed
        when there is no answer to compare, ImageError when the download
        after it fails."""
        url = resolve_base(base, self._shorthands)
        policy = FetchPolicy(self._allowed, tuple(await self._endpoints()))
        loop = asyncio.get_running_loop()

        def report_stale(reasons: tuple[Stale, ...]) -> None:
            if stale is not None:
                loop.call_soon_threadsafe(stale, reasons)

        check = Check(recorded, report_stale)
        image = await loop.run_in_executor(
            self._downloads, self._download, url, policy, self._reporter(loop), check
        )
        if image is not None:
            log.info("refetched %s: blob %s, %d bytes", url, image.blob_uuid, image.size)
        return image

    async def _shared(
        self, key: tuple[str, str], start: Callable[[], Awaitable[CachedImage]]
    ) -> CachedImage:
        """The result of the work `key` in flight, started when none is."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(start())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # A cancelled caller must not cancel the download the others await.
        return await asyncio.shield(task)

    def _forget(self, key: tuple[str, str], task: asyncio.Task[CachedImage]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved, even when every caller went away

    async def _fetch(self, url: str) -> CachedImage:
        cached = await asyncio.to_thread(self._lookup, url)
        if cached is not None:
            return cached
        image = await self._download_new(url)
        await asyncio.to_thread(self._index, image)
        return image

    async def _download_new(self, url: str) -> CachedImage:
        policy = FetchPolicy(self._allowed, tuple(await self._endpoints()))
        loop = asyncio.get_running_loop()
        report = self._reporter(loop)
        image = await loop.run_in_executor(self._downloads, self._download, url, policy, report)
        assert image is not None  # no check: always a download
        log.info("fetched %s: blob %s, %d bytes, %s", url, image.blob_uuid, image.size, image.fmt)
        return image

    def _index_path(self, url: str) -> Path:
        return self._urls / f"{hashlib.sha256(url.encode()).hexdigest()}.json"

    def _lookup(self, url: str) -> CachedImage | None:
        """The index entry of ``url`` if its blob is whole, else None."""
        try:
            entry = json.loads(self._index_path(url).read_text())
            image = CachedImage(
                url=url,
                path=self._blobs.path(entry["blob_uuid"]),
                blob_uuid=entry["blob_uuid"],
                sha512=entry["sha512"],
                size=entry["size"],
                fmt=entry["fmt"],
                modified=entry["modified"],
                fetched_at=entry["fetched_at"],
            )
            if self._blobs.holds(image.blob_uuid, image.size):
                return image
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def indexed_blobs(self) -> frozenset[str]:
        """The blobs the URL index names (blocking): files no blob record
        holds, which disks of records older than disk sources build on."""
        found = set()
        for entry in self._urls.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                found.add(str(json.loads(entry.read_text())["blob_uuid"]))
        return frozenset(found)

    def _index(self, image: CachedImage) -> None:
        """Record what ``image.url`` gave, for ``_lookup``."""
        self._urls.mkdir(parents=True, exist_ok=True)
        for folder in (self._root, self._urls):
            folder.chmod(_DIR_MODE)
        entry = {
            "url": image.url,
            "blob_uuid": image.blob_uuid,
            "sha512": image.sha512,
            "size": image.size,
            "fmt": image.fmt,
            "modified": image.modified,
            "fetched_at": image.fetched_at,
        }
        with _partial_file(self._urls) as out:
            out.write(json.dumps(entry).encode())
            _commit(out, self._index_path(url=image.url))

    def _reporter(self, loop: asyncio.AbstractEventLoop) -> ProgressCallback:
        """A progress callback that the download thread may call: it hands
        each report to the event loop."""
        callback = self._progress

        def report(url: str, done: int, total: int | None) -> None:
            if callback is not None:
                loop.call_soon_threadsafe(_call_progress, callback, url, done, total)

        return report

    def _download(
        self,
        url: str,
        policy: FetchPolicy,
        report: ProgressCallback,
        check: Check | None = None,
    ) -> CachedImage | None:
        """Download ``url`` into a new blob (blocking); with ``check``, only
        when the answer's headers say the recorded blob is stale (None
        otherwise). Raises ImageError; CheckFailed when a check got no
        answer."""
        headers = {"User-Agent": "sfmesh-node-agent"}
        deadline = time.monotonic() + self._deadline
        # Until an answer's headers are in, a check that fails fetched nothing.
        failure: type[ImageError] = ImageError if check is None else CheckFailed
        try:
            with open_image(
                url, policy, timeout=self._timeout, deadline=deadline, headers=headers
            ) as response:
                failure = ImageError
                if check is not None:
                    said = response.headers
                    answer = read_answer(said.get("Last-Modified"), said.get("Content-Length"))
                    reasons = stale_reasons(check.recorded, answer)
                    if not reasons:
                        return None  # closed after the headers: the body is not read
                    check.stale(reasons)
                image = self._store(url, response, report)
        except BlobBusy as error:  # a fresh uuid: only a clash of uuid4s would
            raise ImageError(f"fetching {url}: {error}") from error
        except Refused as error:
            raise failure(f"image URL {url} refused: {error}") from error
        except FetchFailed as error:
            raise failure(f"fetching {url}: {error}") from error
        except Overdue as error:
            raise self._overdue(url, "no body yet", failure) from error
        except (OSError, ValueError, http.client.HTTPException) as error:
            raise failure(f"fetching {url}: {self._describe(error)}") from error
        return image

    @property
    def _limit(self) -> str:
        if self._max_bytes >= 2**30:
            return f"{self._max_bytes / 2**30:g} GiB"
        return f"{self._max_bytes} bytes"

    def _overdue(
        self, url: str, progress: str, failure: type[ImageError] = ImageError
    ) -> ImageError:
        return failure(f"fetching {url}: not done after {self._deadline:g} s ({progress})")

    def _describe(self, reason: object) -> str:
        if isinstance(reason, TimeoutError):
            return f"timed out after {self._timeout:g} s"
        if isinstance(reason, http.client.IncompleteRead):
            return "the connection closed before the end of the body"
        return str(reason) or type(reason).__name__

    def _store(
        self, url: str, response: http.client.HTTPResponse, report: ProgressCallback
    ) -> CachedImage:
        """Stream ``response`` into a new blob, hashing it; the blob appears
        only once whole and checked."""
        total = parse_length(response.headers.get("Content-Length"))
        if total is not None and total > self._max_bytes:
            raise ImageError(f"fetching {url}: {total} bytes is over the limit ({self._limit})")
        step = _REPORT_STEP_UNKNOWN_TOTAL if total is None else max(total // 10, _REPORT_MIN_STEP)
        modified = parse_last_modified(response.headers.get("Last-Modified"))
        head = b""
        done = 0
        reported = 0
        report(url, 0, total)
        blob_uuid = str(uuids.uuid4())
        with self._blobs.writer(blob_uuid) as out:
            try:
                while chunk := response.read1(_CHUNK):  # what has come, so the deadline holds
                    IMAGE_BYTES.inc(len(chunk))
                    out.write(chunk)
                    if len(head) < len(QCOW2_MAGIC):
                        head += chunk[: len(QCOW2_MAGIC) - len(head)]
                    done += len(chunk)
                    if done > self._max_bytes:
                        raise ImageError(f"fetching {url}: over the limit ({self._limit})")
                    if done - reported >= step:
                        report(url, done, total)
                        reported = done
            except Overdue as error:
                raise self._overdue(url, f"{done} bytes so far") from error
            if total is not None and done != total:
                # http.client leaves a short body to its caller to notice.
                raise ImageError(
                    f"fetching {url}: the connection closed after {done} of {total} bytes"
                )
            if detect_format(head) == "qcow2":
                check_self_contained(f"fetching {url}", out.partial)
            sha512 = out.sha512()
            path = out.commit()
        if reported != done or done == 0:
            report(url, done, total)
        fetched_at = time.time()
        return CachedImage(
            url=url,
            path=path,
            blob_uuid=blob_uuid,
            sha512=sha512,
            size=done,
            fmt=detect_format(head),
            modified=modified or fetched_at,
            fetched_at=fetched_at,
        )


def check_self_contained(subject: str, path: Path) -> None:
    """Refuse a qcow2 image that points at another file (a backing file or an
    external data file): qemu would open that file of the host for the guest.
    The ImageError's message starts with `subject` ("fetching <url>")."""
    argv = ["qemu-img", "info", "--output=json", "-f", "qcow2", "-U", str(path)]
    done = subprocess.run(argv, capture_output=True, check=False, timeout=60)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()
        raise ImageError(f"{subject}: not a valid qcow2 image: {reason}")
    info = json.loads(done.stdout)
    data_file = info.get("format-specific", {}).get("data", {}).get("data-file")
    if info.get("backing-filename") or data_file:
        raise ImageError(f"{subject}: qcow2 images that refer to other files are refused")


def _call_progress(callback: ProgressCallback, url: str, done: int, total: int | None) -> None:
    """Call a progress callback, logging what it raises."""
    try:
        callback(url, done, total)
    except Exception:
        log.exception("image progress callback failed for %s", url)


@contextlib.contextmanager
def _partial_file(folder: Path) -> Iterator[IO[bytes]]:
    """A new file in ``folder`` (mode 0644) for ``_commit`` to rename into
    place; removed if the block raises."""
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".partial-", delete=False) as out:
        try:
            os.fchmod(out.fileno(), _FILE_MODE)
            yield out
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(out.name)
            raise


def _commit(out: IO[bytes], path: Path) -> None:
    """Flush ``out`` to disk and rename it to ``path``, atomically."""
    out.flush()
    os.fsync(out.fileno())
    os.replace(out.name, path)
