"""How a snapshot copies one disk of a domain consistently. Pure: the XML
libvirt is given and read, and what its job statistics mean.

A running (or paused) domain's disk is copied by libvirt's own backup job
in push mode (`virDomainBackupBegin`, libvirt ≥ 6.0 with qemu's blockdev;
checked here on libvirt 9.0 / qemu 7.2): qemu copies the disk as it was
when the job began — guest writes after that are held back by
copy-before-write — into a new qcow2 file that libvirt creates. A full
backup reads the whole backing chain, so the copy is flattened and
self-contained. The job ends by itself; its outcome is read from the
domain's completed-job statistics (`success`, or `errmsg`).

A domain that is not running has no writer: its disk file is read with
`qemu-img convert`, which also flattens the chain, while its write lock
keeps qemu from starting on it meanwhile.

**Thin copies** (only the disk's own layer over the blob it was built
from). libvirt's backup job copies the whole chain (push mode runs qemu's
backup with `sync=full`, or `bitmap` against a checkpoint; never `top`), so
a running domain's layer is copied by a *shallow block copy* instead
(`virDomainBlockCopy` with SHALLOW | REUSE_EXT | TRANSIENT_JOB, libvirt 9.0
/ qemu 7.2: qemu's mirror with `sync=top`) into a qcow2 made beforehand
over the same backing file. Once the mirror is in sync (the live XML's
`<mirror ready='yes'>`), ending the job without a pivot
(`virDomainBlockJobAbort`, no flag: qemu's `block-job-cancel` of a ready
mirror) leaves the target a point-in-time copy as of that moment (qemu's
`docs/interop/live-block-operations.rst`); the domain keeps its disk. A
stopped domain's layer is `qemu-img convert -B <its backing file>`, which
copies only the clusters the layer holds. Either copy is then given its
backing file's name relative to the blob store (``blob_chain.py``).

**NVRAM** (UEFI variables, a raw pflash file qemu writes in place): no
block job covers it, so a running domain is paused for the copy of the
file (milliseconds) and resumed: the copy is the file as at one moment,
never one torn by a variable write.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

JOB_NONE = 0
"""libvirt's VIR_DOMAIN_JOB_NONE: no job runs."""
JOB_COMPLETED = 3
"""VIR_DOMAIN_JOB_COMPLETED."""
OPERATION_BACKUP = 9
"""VIR_DOMAIN_JOB_OPERATION_BACKUP."""


class CopyFailed(Exception):
    """The copy could not be made; the message says why."""


def backup_xml(device: str, target: Path) -> str:
    """The push-mode backup of one disk into a new qcow2 file at `target`."""
    return (
        "<domainbackup mode='push'><disks>"
        f"<disk name={quoteattr(device)} backup='yes' type='file'>"
        f"<target file={quoteattr(str(target))}/><driver type='qcow2'/>"
        "</disk></disks></domainbackup>"
    )


def disk_source(domain_xml: str, device: str) -> Path | None:
    """The file behind the disk `device` in a domain's XML; None when the
    domain has no such file-backed disk."""
    root = ET.fromstring(domain_xml)
    for disk in root.iterfind("./devices/disk"):
        target, source = disk.find("target"), disk.find("source")
        if target is not None and target.get("dev") == device and source is not None:
            path = source.get("file")
            return Path(path) if path else None
    return None


def backup_outcome(active: Mapping[str, Any], completed: Mapping[str, Any]) -> bool | None:
    """None while the domain's job still runs (`active`, from jobStats()),
    True when the last completed job (jobStats(COMPLETED)) was a successful
    backup; raises CopyFailed when it failed or is not ours."""
    if active.get("type", JOB_NONE) != JOB_NONE:
        return None
    if completed.get("operation") != OPERATION_BACKUP:
        raise CopyFailed("the backup job ended without a result")
    if completed.get("type") == JOB_COMPLETED and completed.get("success", True):
        return True
    raise CopyFailed(f"the backup job failed: {completed.get('errmsg') or 'no reason given'}")


def shallow_copy_xml(target: Path) -> str:
    """The destination of a shallow block copy: the qcow2 file `target`,
    made beforehand over the disk's backing file."""
    return f"<disk type='file'><source file={quoteattr(str(target))}/><driver type='qcow2'/></disk>"


def mirror_state(domain_xml: str, device: str) -> str | None:
    """The block copy job on disk `device` in a domain's live XML: "ready"
    once the copy is in sync, "copying" before; None when no copy runs."""
    root = ET.fromstring(domain_xml)
    for disk in root.iterfind("./devices/disk"):
        target = disk.find("target")
        if target is None or target.get("dev") != device:
            continue
        mirror = disk.find("mirror")
        if mirror is None:
            return None
        return "ready" if mirror.get("ready") == "yes" else "copying"
    return None


def nvram_source(domain_xml: str) -> Path | None:
    """The NVRAM file of a UEFI domain; None for a BIOS one."""
    text = ET.fromstring(domain_xml).findtext("./os/nvram")
    return Path(text.strip()) if text and text.strip() else None
