"""services/node_agent/disks.py against the real qemu-img, on files in a
folder qemu's user can reach."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
from pathlib import Path
from typing import Any

import pytest

from services.node_agent import disks
from services.node_agent.disks import DiskError

MIB = 1024**2
GIB = 1024**3
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="ownership is only set as root")


async def run(*argv: str, user: str | None = None) -> str:
    """Run a program; its stdout, failing the test on a non-zero exit."""
    child = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, user=user
    )
    stdout, stderr = await child.communicate()
    assert child.returncode == 0, stderr.decode()
    return stdout.decode()


async def info(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(await run("qemu-img", "info", "--output=json", str(path)))
    return info


async def raw_base(folder: Path, size: int = 16 * MIB) -> Path:
    """A raw image with a recognisable pattern in its first sector."""
    base = folder / "base.raw"
    await run("qemu-img", "create", "-q", "-f", "raw", str(base), str(size))
    with base.open("r+b") as image:
        image.write(b"sfmesh base " * 40)
    base.chmod(0o644)
    return base


def leftovers(folder: Path, *keep: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p not in keep)


async def test_overlay_on_a_raw_base_records_it_and_reads_through(qemu_tmp: Path) -> None:
    base = await raw_base(qemu_tmp)
    target = qemu_tmp / "vda.qcow2"
    await disks.overlay(base, "raw", target, None)
    facts = await info(target)
    assert facts["format"] == "qcow2"
    assert facts["backing-filename"] == str(base)
    assert facts["backing-filename-format"] == "raw"
    assert facts["virtual-size"] == 16 * MIB
    assert "Images are identical" in await run(
        "qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(base), str(target)
    )
    assert leftovers(qemu_tmp, base, target) == []


async def test_overlay_on_a_qcow2_base_grows_to_the_size_asked(qemu_tmp: Path) -> None:
    base = qemu_tmp / "base.qcow2"
    await run("qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M")
    target = qemu_tmp / "vda.qcow2"
    await disks.overlay(base, "qcow2", target, 2)
    facts = await info(target)
    assert facts["backing-filename"] == str(base)
    assert facts["backing-filename-format"] == "qcow2"
    assert facts["virtual-size"] == 2 * GIB
    assert await disks.virtual_size(target) == 2 * GIB
    assert await disks.virtual_size(base, "qcow2") == 64 * MIB


async def test_overlay_of_the_base_size_exactly(qemu_tmp: Path) -> None:
    base = await raw_base(qemu_tmp, size=GIB)
    target = qemu_tmp / "vda.qcow2"
    await disks.overlay(base, "raw", target, 1)
    assert (await info(target))["virtual-size"] == GIB


async def test_overlay_smaller_than_its_base_is_refused(qemu_tmp: Path) -> None:
    base = await raw_base(qemu_tmp, size=GIB + MIB)
    target = qemu_tmp / "vda.qcow2"
    with pytest.raises(DiskError, match="1 GiB is smaller than its base image"):
        await disks.overlay(base, "raw", target, 1)
    assert leftovers(qemu_tmp, base) == []


async def test_overlay_records_the_resolved_absolute_base(qemu_tmp: Path) -> None:
    base = await raw_base(qemu_tmp)
    link = qemu_tmp / "latest"
    link.symlink_to(base.name)
    target = qemu_tmp / "vda.qcow2"
    await disks.overlay(link, "raw", target, None)
    assert (await info(target))["backing-filename"] == str(base)


async def test_overlay_again_is_a_no_op(qemu_tmp: Path) -> None:
    base = await raw_base(qemu_tmp)
    target = qemu_tmp / "vda.qcow2"
    await disks.overlay(base, "raw", target, None)
    before = target.stat()
    await disks.overlay(base, "raw", target, 4)
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert (await info(target))["virtual-size"] == 16 * MIB


async def test_overlay_replaces_a_partial_left_by_a_crash(qemu_tmp: Path) -> None:
    base = await raw_base(qemu_tmp)
    target = qemu_tmp / "vda.qcow2"
    disks.partial_path(target).write_bytes(b"half a disk")
    await disks.overlay(base, "raw", target, 1)
    assert (await info(target))["virtual-size"] == GIB
    assert leftovers(qemu_tmp, base, target) == []


async def test_overlay_on_a_missing_base_fails_clearly_and_leaves_nothing(
    qemu_tmp: Path,
) -> None:
    base = qemu_tmp / "no-such-base.raw"
    target = qemu_tmp / "vda.qcow2"
    with pytest.raises(DiskError) as caught:
        await disks.overlay(base, "raw", target, 1)
    message = str(caught.value)
    assert "qemu-img failed" in message
    assert str(base) in message
    assert "No such file or directory" in message
    assert leftovers(qemu_tmp) == []


async def test_overlay_with_the_wrong_base_format_fails(qemu_tmp: Path) -> None:
    base = await raw_base(qemu_tmp)
    target = qemu_tmp / "vda.qcow2"
    with pytest.raises(DiskError, match="qcow2"):
        await disks.overlay(base, "qcow2", target, None)
    assert leftovers(qemu_tmp, base) == []


async def test_a_missing_folder_fails_and_leaves_nothing(qemu_tmp: Path) -> None:
    base = await raw_base(qemu_tmp)
    with pytest.raises(DiskError, match="No such file or directory"):
        await disks.overlay(base, "raw", qemu_tmp / "absent" / "vda.qcow2", None)
    assert leftovers(qemu_tmp, base) == []


async def test_blank_disk_has_the_size_asked_and_no_backing(qemu_tmp: Path) -> None:
    target = qemu_tmp / "vdb.qcow2"
    await disks.blank(target, 3)
    facts = await info(target)
    assert facts["format"] == "qcow2"
    assert facts["virtual-size"] == 3 * GIB
    assert "backing-filename" not in facts
    before = target.stat()
    await disks.blank(target, 5)
    assert target.stat().st_mtime_ns == before.st_mtime_ns
    assert (await info(target))["virtual-size"] == 3 * GIB
    assert leftovers(qemu_tmp, target) == []


async def test_blank_disk_of_no_size_is_refused(qemu_tmp: Path) -> None:
    with pytest.raises(ValueError, match="at least 1 GiB"):
        await disks.blank(qemu_tmp / "vdb.qcow2", 0)


async def test_virtual_size_of_a_missing_file_is_a_disk_error(qemu_tmp: Path) -> None:
    with pytest.raises(DiskError, match="No such file or directory"):
        await disks.virtual_size(qemu_tmp / "nothing.qcow2")


@as_root
async def test_disks_belong_to_qemu_which_can_read_and_write_them(qemu_tmp: Path) -> None:
    base = await raw_base(qemu_tmp)
    overlay, blank = qemu_tmp / "vda.qcow2", qemu_tmp / "vdb.qcow2"
    await disks.overlay(base, "raw", overlay, 1)
    await disks.blank(blank, 1)
    qemu = pwd.getpwnam("libvirt-qemu")
    for disk in (overlay, blank):
        stat = disk.stat()
        assert stat.st_mode & 0o777 == 0o600
        assert (stat.st_uid, stat.st_gid) == (qemu.pw_uid, qemu.pw_gid)
        await run(
            "qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", str(disk), user="libvirt-qemu"
        )
        assert "read 65536/65536" in await run(
            "qemu-io", "-f", "qcow2", "-c", "read -P 0x5a 0 64k", str(disk), user="libvirt-qemu"
        )
