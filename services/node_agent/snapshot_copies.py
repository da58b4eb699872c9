"""How a snapshot's bytes are made on this node: the consistent copy of one
device of a domain into `<work>/<blob uuid>.qcow2` (or `.fd`), checked,
hashed and adopted into the blob store under the reserved blob's uuid
(``snapshots.py`` runs the copies and records them).

- **Flattened** (the default): libvirt's backup job for a running or paused
  domain, `qemu-img convert` for a stopped one (``disk_copy.py``); the copy
  must be a self-contained qcow2.
- **Thin** (`Job.parent`: the blob the disk was built from): only the
  disk's own layer, by a shallow block copy into a qcow2 made over the same
  base, or `qemu-img convert -B`; then named over its parent relative to
  the blob store and checked to name exactly that (``blob_chain.py``).
- **NVRAM** (device `nvram`): the domain's variables file as at one moment
  (the domain paused for it), a raw blob.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sfmesh.v1 import artifact_pb2

from services.node_agent import blob_chain
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import BlobStore
from services.node_agent.disk_copy import CopyFailed
from services.node_agent.disk_images import qemu_format
from services.node_agent.disks import absolute, run_tool
from services.node_agent.file_digests import file_digest
from services.node_agent.hypervisor import Hypervisor
from services.node_agent.images import check_self_contained
from services.node_agent.snapshot_outcome import Copy

FORMAT = "qcow2"
NVRAM = "nvram"
"""The device name of a UEFI instance's variables (reference §7.1)."""
_CREATED = artifact_pb2.BLOB_STATE_CREATED


@dataclass(frozen=True)
class Job:
    """One disk to copy."""

    instance_uuid: str
    device: str
    artifact_uuid: str
    blob_uuid: str
    request_id: str = ""
    parent: str = ""
    """For a thin copy, the blob the disk was built from; "" flattens."""


class Copier:
    """Makes the copies of snapshots on this node."""

    def __init__(
        self, *, hypervisor: Hypervisor, blobs: BlobStore, records: BlobRecords, work_dir: Path
    ) -> None:
        self._hypervisor = hypervisor
        self._blobs = blobs
        self._records = records
        self._work_dir = work_dir

    async def copy(self, job: Job) -> Copy:
        """The consistent copy, adopted as the blob's file here."""
        await asyncio.to_thread(_make_work_dir, self._work_dir)
        nvram = job.device == NVRAM
        target = self._work_dir / f"{job.blob_uuid}.{'fd' if nvram else 'qcow2'}"
        await asyncio.to_thread(target.unlink, True)
        fmt = "raw" if nvram else FORMAT
        try:
            if nvram:
                await self._hypervisor.copy_nvram(job.instance_uuid, target)
            elif job.parent:
                await self._copy_layer(job, target)
            else:
                await self._copy_whole(job, target)
            found = await asyncio.to_thread(file_digest, target)
            size, sha512 = found.size, found.sha512
            await asyncio.to_thread(self._blobs.adopt, job.blob_uuid, target)
        finally:
            await asyncio.to_thread(target.unlink, True)
        parent = "" if nvram else job.parent
        return Copy(job.blob_uuid, size, sha512, format=fmt, depends_on=parent)

    async def _copy_whole(self, job: Job, target: Path) -> None:
        """The disk flattened: libvirt's backup job, or qemu-img convert."""
        copied = await self._hypervisor.backup_disk(job.instance_uuid, job.device, target)
        if not copied:  # not running: nothing writes the disk
            source = await self._source(job)
            await run_tool(
                "qemu-img", "convert", "-q", "-O", FORMAT, absolute(source), absolute(target)
            )
        await asyncio.to_thread(check_self_contained, f"snapshot of {job.device}", target)

    async def _copy_layer(self, job: Job, target: Path) -> None:
        """Only the disk's own layer over blob `job.parent`: a shallow block
        copy into a qcow2 made over the same backing file, or qemu-img
        convert -B; then named over its parent in the blob store."""
        stored = await self._records.blob(job.parent)
        if stored is None or stored.record.blob.state != _CREATED:
            raise CopyFailed(f"the disk's base blob {job.parent} is gone")
        parent_fmt = qemu_format(stored.record.blob.format)
        parent_path = await asyncio.to_thread(self._blobs.path(job.parent).resolve)
        source = await self._source(job)
        info = await asyncio.to_thread(blob_chain.image_info, source)
        backing = info.get("backing-filename")
        if backing is None or Path(backing) != parent_path:
            raise CopyFailed(
                f"the disk {job.device} is not a layer over blob {job.parent} (backing {backing})"
            )
        base = ["-F", parent_fmt, "-b", str(parent_path)]
        size = str(info["virtual-size"])
        await run_tool("qemu-img", "create", "-q", "-f", FORMAT, *base, absolute(target), size)
        copied = await self._hypervisor.copy_disk_top(job.instance_uuid, job.device, target)
        if not copied:  # not running: nothing writes the disk
            await asyncio.to_thread(target.unlink, True)
            await run_tool(
                "qemu-img", "convert", "-q", "-O", FORMAT, "-B", str(parent_path),
                "-F", parent_fmt, absolute(source), absolute(target),
            )  # fmt: skip
        relative = blob_chain.backing_name(job.parent)
        await run_tool(
            "qemu-img", "rebase", "-q", "-u", "-f", FORMAT, "-b", relative, "-F", parent_fmt,
            absolute(target),
        )  # fmt: skip
        subject = f"snapshot of {job.device}"
        await asyncio.to_thread(blob_chain.check_layer, subject, target, job.parent, parent_fmt)

    async def _source(self, job: Job) -> Path:
        source = await self._hypervisor.disk_source(job.instance_uuid, job.device)
        if source is None:
            raise CopyFailed(f"the instance has no disk {job.device}")
        return source


def _make_work_dir(folder: Path) -> None:
    """A folder qemu (another user) can traverse, for libvirt to write into."""
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder.chmod(0o755)
