"""The XML and job statistics of a snapshot's consistent copy."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from services.node_agent import disk_copy
from services.node_agent.disk_copy import CopyFailed


def test_backup_xml_copies_one_disk_into_a_qcow2_file() -> None:
    root = ET.fromstring(disk_copy.backup_xml("vda", Path("/s/x'y.qcow2")))
    assert root.tag == "domainbackup" and root.get("mode") == "push"
    (disk,) = root.iterfind("./disks/disk")
    assert (disk.get("name"), disk.get("backup"), disk.get("type")) == ("vda", "yes", "file")
    assert disk.find("target").get("file") == "/s/x'y.qcow2"  # type: ignore[union-attr]
    assert disk.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]


DOMAIN = """<domain><devices>
<disk type='file' device='disk'><source file='/i/disk-0.qcow2'/><target dev='vda'/></disk>
<disk type='file' device='cdrom'><target dev='sda'/></disk>
<disk type='file' device='disk'><source file='/i/disk-1.qcow2'/><target dev='vdc'/></disk>
</devices></domain>"""


def test_disk_source_reads_the_file_behind_a_device() -> None:
    assert disk_copy.disk_source(DOMAIN, "vdc") == Path("/i/disk-1.qcow2")
    assert disk_copy.disk_source(DOMAIN, "sda") is None
    assert disk_copy.disk_source(DOMAIN, "vdz") is None


def test_a_running_job_has_no_outcome_yet() -> None:
    assert disk_copy.backup_outcome({"type": 2, "operation": 9}, {}) is None


def test_a_completed_backup_succeeds() -> None:
    completed = {"type": 3, "operation": 9, "success": True}
    assert disk_copy.backup_outcome({"type": 0}, completed) is True


def test_a_failed_or_missing_backup_fails() -> None:
    with pytest.raises(CopyFailed, match="no space"):
        disk_copy.backup_outcome({"type": 0}, {"type": 4, "operation": 9, "errmsg": "no space"})
    with pytest.raises(CopyFailed, match="without a result"):
        disk_copy.backup_outcome({"type": 0}, {"type": 0})


def test_a_shallow_copy_goes_into_a_qcow2_file() -> None:
    root = ET.fromstring(disk_copy.shallow_copy_xml(Path("/s/x'y.qcow2")))
    assert (root.tag, root.get("type")) == ("disk", "file")
    assert root.find("source").get("file") == "/s/x'y.qcow2"  # type: ignore[union-attr]
    assert root.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]


MIRRORING = """<domain><os><nvram template='/t.fd'>/i/nvram.fd</nvram></os><devices>
<disk type='file' device='disk'><source file='/i/disk-0.qcow2'/><target dev='vda'/>
<mirror type='file' file='/s/c.qcow2' format='qcow2' job='copy' ready='yes'/></disk>
<disk type='file' device='disk'><source file='/i/disk-1.qcow2'/><target dev='vdb'/>
<mirror type='file' file='/s/d.qcow2' format='qcow2' job='copy'/></disk>
<disk type='file' device='disk'><source file='/i/disk-2.qcow2'/><target dev='vdc'/></disk>
</devices></domain>"""


def test_the_mirror_state_of_each_disk() -> None:
    assert disk_copy.mirror_state(MIRRORING, "vda") == "ready"
    assert disk_copy.mirror_state(MIRRORING, "vdb") == "copying"
    assert disk_copy.mirror_state(MIRRORING, "vdc") is None
    assert disk_copy.mirror_state(MIRRORING, "vdz") is None


def test_the_nvram_file_of_a_uefi_domain() -> None:
    assert disk_copy.nvram_source(MIRRORING) == Path("/i/nvram.fd")
    assert disk_copy.nvram_source(DOMAIN) is None
