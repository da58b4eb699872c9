"""services/node_agent/configdrive.py against the real genisoimage; the ISO is
read back with isoinfo and blkid, never mounted."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
from pathlib import Path

import pytest

from services.node_agent import disks
from services.node_agent.configdrive import (
    ConfigDriveContent,
    config_drive_files,
    write_config_drive,
)
from services.node_agent.disks import DiskError

UUID = "0d5e3c8a-6f4b-4c1e-8a2d-9b7f1e3c5a71"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFq user@host"
USER_DATA = b"#!/bin/sh\necho hello from user data\n"
NETWORK: dict[str, list[object]] = {"links": [], "networks": [], "services": []}
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="ownership is only set as root")


def content(user_data: bytes | None = USER_DATA) -> ConfigDriveContent:
    return ConfigDriveContent(
        uuid=UUID, hostname="web-1", user_data=user_data, ssh_key=KEY, network_data=NETWORK
    )


async def run(*argv: str, user: str | None = None) -> bytes:
    """Run a program; its stdout, failing the test on a non-zero exit."""
    child = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, user=user
    )
    stdout, stderr = await child.communicate()
    assert child.returncode == 0, stderr.decode()
    return stdout


async def listing(iso: Path) -> set[str]:
    """Every path on the ISO by its Rock Ridge name."""
    return set((await run("isoinfo", "-R", "-f", "-i", str(iso))).decode().split())


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def extract(iso: Path, name: str, user: str | None = None) -> bytes:
    return await run("isoinfo", "-R", "-x", f"/{name}", "-i", str(iso), user=user)


async def test_the_iso_is_labelled_config_2_with_rock_ridge_and_joliet(qemu_tmp: Path) -> None:
    iso = qemu_tmp / "config.iso"
    await write_config_drive(content(), iso)
    described = (await run("isoinfo", "-d", "-i", str(iso))).decode()
    assert "Volume id: config-2" in described
    assert "Rock Ridge signatures" in described
    assert "Joliet with UCS level" in described
    # What `findfs LABEL=config-2` in the guest relies on: libblkid's probe.
    probed = await run("blkid", "-p", "-o", "value", "-s", "LABEL", "-s", "TYPE", str(iso))
    assert probed.decode().split() == ["config-2", "iso9660"]


async def test_the_iso_holds_exactly_the_files_built(qemu_tmp: Path) -> None:
    iso = qemu_tmp / "config.iso"
    await write_config_drive(content(), iso)
    files = config_drive_files(content())
    assert await listing(iso) == {"/openstack", "/openstack/latest"} | {f"/{n}" for n in files}
    for name, data in files.items():
        assert await extract(iso, name) == data
    meta = json.loads(await extract(iso, "openstack/latest/meta_data.json"))
    assert (meta["uuid"], meta["hostname"], meta["public_keys"]) == (
        UUID,
        "web-1",
        {"sshkey": KEY},
    )
    assert await extract(iso, "openstack/latest/user_data") == USER_DATA


async def test_without_user_data_the_iso_has_no_user_data(qemu_tmp: Path) -> None:
    iso = qemu_tmp / "config.iso"
    await write_config_drive(content(user_data=None), iso)
    assert "/openstack/latest/user_data" not in await listing(iso)
    assert "/openstack/latest/meta_data.json" in await listing(iso)


async def test_writing_again_is_a_no_op_and_leaves_nothing_else(qemu_tmp: Path) -> None:
    iso = qemu_tmp / "config.iso"
    await write_config_drive(content(), iso)
    before = iso.stat()
    await write_config_drive(content(user_data=b"other"), iso)
    after = iso.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert await extract(iso, "openstack/latest/user_data") == USER_DATA
    assert names(qemu_tmp) == ["config.iso"]


async def test_leftovers_of_a_crash_are_replaced(qemu_tmp: Path) -> None:
    iso = qemu_tmp / "config.iso"
    stale_tree = disks.partial_path(iso, "tree")
    (stale_tree / "openstack").mkdir(parents=True)
    (stale_tree / "stale").write_bytes(b"from before the crash")
    disks.partial_path(iso).write_bytes(b"half an iso")
    await write_config_drive(content(), iso)
    assert "/stale" not in await listing(iso)
    assert names(qemu_tmp) == ["config.iso"]


async def test_a_failing_genisoimage_is_a_disk_error_and_leaves_nothing(
    qemu_tmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DiskError, match="cannot run genisoimage"):
        await write_config_drive(content(), qemu_tmp / "config.iso")
    assert names(qemu_tmp) == []


async def test_a_missing_folder_is_a_disk_error_and_not_created(qemu_tmp: Path) -> None:
    with pytest.raises(DiskError, match="No such file or directory"):
        await write_config_drive(content(), qemu_tmp / "absent" / "config.iso")
    assert names(qemu_tmp) == []


@as_root
async def test_qemus_user_owns_and_reads_the_iso(qemu_tmp: Path) -> None:
    iso = qemu_tmp / "config.iso"
    await write_config_drive(content(), iso)
    qemu = pwd.getpwnam("libvirt-qemu")
    stat = iso.stat()
    assert stat.st_mode & 0o777 == 0o600
    assert (stat.st_uid, stat.st_gid) == (qemu.pw_uid, qemu.pw_gid)
    data = await extract(iso, "openstack/latest/user_data", user="libvirt-qemu")
    assert data == USER_DATA
