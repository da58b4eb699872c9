"""services/node_agent/snapshots.py with the real libvirtd (qemu:///system),
qemu-img and a real etcd: a thin copy of a running domain's disk (a shallow
block copy) and of a stopped one's (qemu-img convert -B) holds only the
disk's own layer, names its parent relative to the blob store, is recorded
`depends_on` its parent (which gains a reference) and boots; pruning a thin
version lets go of its parent; a failed first snapshot fails its artifact;
a UEFI domain's NVRAM is copied as the file is (the domain paused for it,
then running again) and serves as another domain's NVRAM template.

Every file qemu touches lives under `qemu_tmp`; domain names are unique per
run and every domain is removed in a finally."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest
from sfmesh.v1 import artifact_pb2, records_pb2

from guests.bootsector import MARKER, boot_sector
from services.common.store import Put, Store, key
from services.node_agent import disks
from services.node_agent.blob_records import BlobRecords
from services.node_agent.blob_store import LocalBlobStore
from services.node_agent.disk_images import DiskImages
from services.node_agent.domain_xml import DiskDevice, DomainSpec, Firmware, render_domain
from services.node_agent.fetch_policy import Endpoint
from services.node_agent.hypervisor import Hypervisor
from services.node_agent.images import ImageCache
from services.node_agent.snapshots import NVRAM, Job, Snapshots
from tests.event_sinks import RecordedEvents

OVMF = Path("/usr/share/OVMF")
A = artifact_pb2
MIB = 1 << 20
WRITES = ((512 * 1024, 0xAB, 64 * 1024), (3 * MIB, 0xCD, 128 * 1024))
"""(offset, byte, length) written into each disk's own layer before it runs."""
BOOT_TIMEOUT_S = 15.0


async def no_endpoints() -> tuple[Endpoint, ...]:
    return ()


def qemu_img(*argv: str) -> str:
    return subprocess.run(
        ["qemu-img", *argv], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def info(path: Path) -> dict[str, object]:
    found: dict[str, object] = json.loads(qemu_img("info", "--output=json", "-U", str(path)))
    return found


def own_clusters(path: Path) -> list[tuple[int, int]]:
    """(start, length) of the data a qcow2 file holds itself (depth 0)."""
    extents = json.loads(qemu_img("map", "--output=json", "-U", str(path)))
    return [(e["start"], e["length"]) for e in extents if e["depth"] == 0 and e["data"]]


def writer_sector() -> bytes:
    """A boot sector that writes for ever: a counter, incremented, into the
    sector at 1 MiB, then the same value into the one at 2 MiB (BIOS int
    13h extended writes), again and again. Any moment's disk holds equal
    counters, or the first one more; a copy torn across moments could hold
    the second one more."""
    code = bytes(
        [
            0x31, 0xC0,  # 00        xor ax, ax
            0x8E, 0xD8,  # 02        mov ds, ax
            0x8E, 0xD0,  # 04        mov ss, ax
            0xBC, 0x00, 0x7C,  # 06  mov sp, 0x7c00
            0x88, 0x16, 0x00, 0x7E,  # 09  mov [0x7e00], dl   ; the boot drive
            0x66, 0x83, 0x06, 0x00, 0x80, 0x01,  # 0d next: add dword [0x8000], 1
            0xC7, 0x06, 0x3C, 0x7C, 0x00, 0x08,  # 13  mov word [lba], 2048 (1 MiB)
            0xE8, 0x0B, 0x00,  # 19  call write
            0xC7, 0x06, 0x3C, 0x7C, 0x00, 0x10,  # 1c  mov word [lba], 4096 (2 MiB)
            0xE8, 0x02, 0x00,  # 22  call write
            0xEB, 0xE6,  # 25        jmp next
            0xBE, 0x34, 0x7C,  # 27 write: mov si, dap (0x7c34)
            0xB8, 0x00, 0x43,  # 2a  mov ax, 0x4300     ; extended write
            0x8A, 0x16, 0x00, 0x7E,  # 2d  mov dl, [0x7e00]
            0xCD, 0x13,  # 31        int 0x13
            0xC3,  # 33              ret
            0x10, 0x00, 0x01, 0x00,  # 34 dap: 16 bytes, 1 sector,
            0x00, 0x80, 0x00, 0x00,  # 38      from 0000:8000,
            0, 0, 0, 0, 0, 0, 0, 0,  # 3c lba: the sector
        ]
    )  # fmt: skip
    return code.ljust(510, b"\0") + b"\x55\xaa"


def counters(path: Path, fmt: str) -> tuple[int, int]:
    """The two counters the writer guest keeps, as `path` holds them."""
    found = []
    for offset in (MIB, 2 * MIB):
        shown = subprocess.run(
            ["qemu-io", "-r", "-U", "-f", fmt, "-c", f"read -v {offset} 4", str(path)],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.split()  # fmt: skip
        found.append(int.from_bytes(bytes(int(b, 16) for b in shown[1:5]), "little"))
    return found[0], found[1]


@dataclass
class Harness:
    store: Store
    root: Path
    node: str
    blobs: LocalBlobStore
    records: BlobRecords
    hypervisor: Hypervisor
    events: RecordedEvents
    snapshots: Snapshots
    conn: libvirt.virConnect

    async def base_blob(self, sector: bytes = b"") -> str:
        """A boot sector guest (the marker printer by default) as a raw
        4 MiB blob on this node, held by one instance (one reference)."""
        data = (sector or boot_sector()).ljust(4 * MIB, b"\0")
        name = str(uuid.uuid4())
        with self.blobs.writer(name) as writer:
            writer.write(data)
            writer.commit()
        blob = A.Blob(
            uuid=name,
            state=A.BLOB_STATE_CREATED,
            version=6,
            size=len(data),
            locations=[self.node],
            reference_count=1,
            sha512=hashlib.sha512(data).hexdigest(),
            format="raw",
        )
        record = records_pb2.BlobRecord(blob=blob, created_at=time.time())
        assert await self.store.commit([Put(key("blob", name), record.SerializeToString(), 0)])
        return name

    async def disk(self, instance: str, base: str, *, write: bool = True) -> Path:
        """An instance's disk: a qcow2 layer over blob `base`, as the builder
        lays it out, with WRITES in its own layer."""
        folder = self.root / "instances" / instance
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        target = folder / "disk-0.qcow2"
        await disks.overlay(self.blobs.path(base), "raw", target, None)
        for offset, byte, length in WRITES if write else ():
            await disks.run_tool(
                "qemu-io", "-f", "qcow2", "-c", f"write -P {byte} {offset} {length}", str(target)
            )
        return target

    def spec(self, instance: str, disk: Path, firmware: Firmware | None = None) -> DomainSpec:
        return DomainSpec(
            name=self.hypervisor.domain_name(instance),
            uuid=instance,
            cpus=1,
            memory_mib=128 if firmware else 64,
            virt_type="qemu",
            machine="pc",
            disks=(DiskDevice(disk, "virtio", "disk", "qcow2"),),
            nics=(),
            video_model="vga",
            video_vram_kib=16384,
            console_log=disk.parent / "console.log",
            firmware=firmware,
        )

    async def artifact(self, instance: str, device: str, *, max_versions: int = 3) -> str:
        name = str(uuid.uuid4())
        record = records_pb2.ArtifactRecord(
            artifact=A.Artifact(
                uuid=name,
                state=A.ARTIFACT_STATE_INITIAL,
                artifact_type=A.ARTIFACT_TYPE_SNAPSHOT,
                source_url=f"sf://instance/{instance}/{device}",
                namespace="system",
                max_versions=max_versions,
            ),
            created_at=time.time(),
        )
        assert await self.store.commit([Put(key("artifact", name), record.SerializeToString(), 0)])
        return name

    async def reserve(self, artifact: str) -> str:
        """A blob reserved `initial` for a copy here, as the api reserves it."""
        name = str(uuid.uuid4())
        blob = A.Blob(uuid=name, state=A.BLOB_STATE_INITIAL, version=6)
        record = records_pb2.BlobRecord(
            blob=blob, created_at=time.time(), maker_node=self.node, artifact_uuid=artifact
        )
        assert await self.store.commit([Put(key("blob", name), record.SerializeToString(), 0)])
        return name

    async def snapshot(self, instance: str, device: str, artifact: str, parent: str = "") -> str:
        """Copy `device` into a new reserved blob, waiting for the outcome."""
        blob = await self.reserve(artifact)
        job = Job(instance, device, artifact, blob, parent=parent)
        if device == NVRAM:
            await self.snapshots.run(job)
        else:
            self.snapshots.start(job)
            await self.snapshots.wait()
        return blob

    async def blob(self, name: str) -> A.Blob:
        stored = await self.records.blob(name)
        assert stored is not None
        return stored.record.blob

    async def read_artifact(self, name: str) -> records_pb2.ArtifactRecord:
        stored = await self.records.artifact(name)
        assert stored is not None
        return stored.record


@pytest.fixture
async def harness(etcd: str, qemu_tmp: Path) -> AsyncIterator[Harness]:
    store = Store(etcd)
    node = f"snapcopy-{uuid.uuid4().hex[:8]}"
    blobs = LocalBlobStore(qemu_tmp / "blobs")
    records = BlobRecords(store)
    hypervisor = Hypervisor("qemu:///system", node, lambda *_: None, lambda: None)
    events = RecordedEvents()
    snapshots = Snapshots(
        node=node,
        hypervisor=hypervisor,
        blobs=blobs,
        records=records,
        store=store,
        events=events,
        work_dir=qemu_tmp / "snapshots",
    )
    conn = libvirt.open("qemu:///system")
    built = Harness(store, qemu_tmp, node, blobs, records, hypervisor, events, snapshots, conn)
    try:
        yield built
    finally:
        await snapshots.close()
        for domain in conn.listAllDomains():
            if domain.name().startswith(f"sfmesh-{node}-"):
                with contextlib.suppress(libvirt.libvirtError):
                    domain.destroy()
                domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        conn.close()
        await store.close()


@contextlib.contextmanager
def running(
    conn: libvirt.virConnect, spec: DomainSpec, *, start: bool = True
) -> Iterator[libvirt.virDomain]:
    """The domain of `spec`, defined (and started), undefined after."""
    domain = conn.defineXML(render_domain(spec))
    try:
        if start:
            domain.create()
        yield domain
    finally:
        if domain.isActive():
            domain.destroy()
        domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


async def booted(console: Path) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while MARKER not in await asyncio.to_thread(_read, console):
        assert time.monotonic() < deadline, "the guest did not print its marker"
        await asyncio.sleep(0.05)


async def check_thin(harness: Harness, child: str, parent: str, disk: Path) -> None:
    """`child` is a created thin blob over `parent` holding what `disk`'s
    own layer holds, and nothing else."""
    blob = await harness.blob(child)
    assert blob.state == A.BLOB_STATE_CREATED, harness.events.events
    assert (blob.depends_on, blob.format, list(blob.locations)) == (parent, "qcow2", [harness.node])
    path = harness.blobs.path(child)
    assert (
        blob.size == path.stat().st_size
        and blob.sha512 == hashlib.sha512(path.read_bytes()).hexdigest()
    )
    found = info(path)
    assert found["backing-filename"] == f"../{parent[:2]}/{parent}"
    assert found["backing-filename-format"] == "raw"
    assert own_clusters(path) == [(offset, length) for offset, _, length in WRITES]
    qemu_img("compare", "-U", str(path), str(disk))  # exit 0: the same guest-visible content


async def test_a_running_disk_s_own_layer_becomes_a_thin_blob_that_boots(harness: Harness) -> None:
    parent = await harness.base_blob()
    instance = str(uuid.uuid4())
    disk = await harness.disk(instance, parent)
    spec = harness.spec(instance, disk)
    artifact = await harness.artifact(instance, "vda")
    with running(harness.conn, spec) as domain:
        await booted(spec.console_log)
        child = await harness.snapshot(instance, "vda", artifact, parent)
        assert domain.isActive() and domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert "<mirror" not in domain.XMLDesc() and domain.blockJobInfo("vda", 0) == {}
        await check_thin(harness, child, parent, disk)
    assert (await harness.blob(parent)).reference_count == 2  # the instance's and the child's
    record = await harness.read_artifact(artifact)
    assert record.artifact.state == A.ARTIFACT_STATE_CREATED
    assert [(v.index, v.blob_uuid) for v in record.versions] == [(1, child)]
    complete = [e for e in harness.events.events if e.message == "snapshot complete"]
    assert complete[-1].extra["depends_on"] == parent

    # An instance from the thin blob: a layer over it, its chain resolved by qemu.
    image = await DiskImages(
        node=harness.node,
        images=ImageCache(harness.root / "images", {}, blobs=harness.blobs, endpoints=no_endpoints),
        blobs=harness.blobs,
        records=harness.records,
    ).from_blob(child)
    assert (image.path, image.fmt) == (harness.blobs.path(child), "qcow2")
    again = str(uuid.uuid4())
    folder = harness.root / "instances" / again
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    copy = folder / "disk-0.qcow2"
    await disks.overlay(image.path, image.fmt, copy, None)
    qemu_img("compare", "-U", str(copy), str(disk))
    copy_spec = harness.spec(again, copy)
    with running(harness.conn, copy_spec):
        await booted(copy_spec.console_log)


async def test_copies_of_a_disk_being_written_are_each_of_one_moment(harness: Harness) -> None:
    """A guest writes its disk without pause through both copies, thin (a
    shallow block copy) and flattened (the backup job): each holds the disk
    as it was at one moment."""
    parent = await harness.base_blob(writer_sector())
    instance = str(uuid.uuid4())
    disk = await harness.disk(instance, parent, write=False)
    artifact = await harness.artifact(instance, "vda")
    with running(harness.conn, harness.spec(instance, disk)):
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while (await asyncio.to_thread(counters, disk, "qcow2"))[1] < 100:
            assert time.monotonic() < deadline, "the writer guest does not write"
            await asyncio.sleep(0.1)
        thin = await harness.snapshot(instance, "vda", artifact, parent)
        flat = await harness.snapshot(instance, "vda", artifact)
        after = await asyncio.to_thread(counters, disk, "qcow2")
    for copy in (thin, flat):
        assert (await harness.blob(copy)).state == A.BLOB_STATE_CREATED, harness.events.events
        first, second = counters(harness.blobs.path(copy), "qcow2")
        assert first - second in (0, 1) and 100 <= second < after[1], (first, second)
    assert (await harness.blob(thin)).depends_on == parent


async def test_a_paused_domain_s_layer_is_copied_past_a_copy_a_killed_agent_left(
    harness: Harness,
) -> None:
    """A block copy left mirroring (its agent killed mid-copy) is ended
    first; a paused domain is copied as a running one, and stays paused."""
    parent = await harness.base_blob()
    instance = str(uuid.uuid4())
    disk = await harness.disk(instance, parent)
    artifact = await harness.artifact(instance, "vda")
    spec = harness.spec(instance, disk)
    with running(harness.conn, spec) as domain:
        await booted(spec.console_log)
        stale = harness.root / "left-behind.qcow2"
        await disks.run_tool(
            "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
            "-b", str(harness.blobs.path(parent).resolve()), str(stale), str(4 * MIB),
        )  # fmt: skip
        flags = (
            libvirt.VIR_DOMAIN_BLOCK_COPY_SHALLOW
            | libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT
            | libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        )
        domain.blockCopy("vda", f"<disk type='file'><source file='{stale}'/></disk>", None, flags)
        domain.suspend()
        child = await harness.snapshot(instance, "vda", artifact, parent)
        assert domain.state()[0] == libvirt.VIR_DOMAIN_PAUSED
        assert "<mirror" not in domain.XMLDesc()
        await check_thin(harness, child, parent, disk)


async def test_a_stopped_disk_s_own_layer_is_copied_by_qemu_img(harness: Harness) -> None:
    parent = await harness.base_blob()
    instance = str(uuid.uuid4())
    disk = await harness.disk(instance, parent)
    artifact = await harness.artifact(instance, "vda")
    with running(harness.conn, harness.spec(instance, disk), start=False):
        child = await harness.snapshot(instance, "vda", artifact, parent)
        await check_thin(harness, child, parent, disk)
        flat = await harness.snapshot(instance, "vda", artifact)  # thin not asked: flattened
    whole = await harness.blob(flat)
    assert whole.state == A.BLOB_STATE_CREATED and not whole.HasField("depends_on")
    assert "backing-filename" not in info(harness.blobs.path(flat))
    assert (await harness.blob(parent)).reference_count == 2


async def test_pruning_a_thin_version_lets_go_of_its_parent(harness: Harness) -> None:
    parent = await harness.base_blob()
    instance = str(uuid.uuid4())
    disk = await harness.disk(instance, parent)
    artifact = await harness.artifact(instance, "vda", max_versions=1)
    with running(harness.conn, harness.spec(instance, disk), start=False):
        first = await harness.snapshot(instance, "vda", artifact, parent)
        assert (await harness.blob(parent)).reference_count == 2
        second = await harness.snapshot(instance, "vda", artifact, parent)
    gone = await harness.blob(first)
    assert (gone.state, gone.reference_count) == (A.BLOB_STATE_DELETED, 0)
    assert (await harness.blob(second)).reference_count == 1
    assert (await harness.blob(parent)).reference_count == 2  # +1 second, -1 first


async def test_a_failed_first_snapshot_fails_its_artifact(harness: Harness) -> None:
    parent = await harness.base_blob()
    instance = str(uuid.uuid4())
    disk = await harness.disk(instance, parent)
    artifact = await harness.artifact(instance, "vdz")
    with running(harness.conn, harness.spec(instance, disk), start=False):
        blob = await harness.snapshot(instance, "vdz", artifact, parent)
    assert (await harness.blob(blob)).state == A.BLOB_STATE_ERROR
    record = await harness.read_artifact(artifact)
    assert record.artifact.state == A.ARTIFACT_STATE_ERROR
    assert record.artifact.error_message == "the instance has no disk vdz"
    assert not record.versions
    assert (await harness.blob(parent)).reference_count == 1
    assert not list(harness.blobs.root.glob(f"*/{blob}*"))


async def test_a_uefi_domain_s_nvram_is_copied_and_serves_as_a_template(harness: Harness) -> None:
    parent = await harness.base_blob()
    instance = str(uuid.uuid4())
    disk = await harness.disk(instance, parent, write=False)
    nvram = disk.parent / "nvram.fd"
    template = OVMF / "OVMF_VARS_4M.fd"
    firmware = Firmware(OVMF / "OVMF_CODE_4M.fd", nvram, template, secure_boot=False)
    artifact = await harness.artifact(instance, NVRAM)
    with running(harness.conn, harness.spec(instance, disk, firmware)) as domain:
        # OVMF records its boot options in its variables once it has run a while.
        deadline = time.monotonic() + 60
        while nvram.read_bytes() == template.read_bytes():
            assert time.monotonic() < deadline, "OVMF never wrote its variables"
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # at its shell by now: nothing writes
        blob = await harness.snapshot(instance, NVRAM, artifact)  # versioned on return
        assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING  # paused, then resumed
        copied = await harness.blob(blob)
        assert copied.state == A.BLOB_STATE_CREATED, harness.events.events
        assert (copied.format, copied.size) == ("raw", nvram.stat().st_size)
        content = harness.blobs.path(blob).read_bytes()
        assert content == nvram.read_bytes() != template.read_bytes()
        assert copied.sha512 == hashlib.sha512(content).hexdigest()
        assert not copied.HasField("depends_on")
        record = await harness.read_artifact(artifact)
        assert [(v.index, v.blob_uuid) for v in record.versions] == [(1, blob)]
        domain.destroy()  # stopped: the file as it is, no pause
        stopped = await harness.snapshot(instance, NVRAM, artifact)
        assert harness.blobs.path(stopped).read_bytes() == nvram.read_bytes()

    # The copy as another domain's template: libvirt copies it at first start.
    other = str(uuid.uuid4())
    other_disk = await harness.disk(other, parent, write=False)
    other_nvram = other_disk.parent / "nvram.fd"
    from_blob = Firmware(OVMF / "OVMF_CODE_4M.fd", other_nvram, harness.blobs.path(blob), False)
    with running(harness.conn, harness.spec(other, other_disk, from_blob), start=False) as domain:
        domain.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
        assert other_nvram.read_bytes() == content
