"""The tiny Linux test guest (guests/testguest) boots under libvirt and obeys
ACPI: its marker lines reach the serial file, the config drive is read, an
ACPI shutdown stops the domain and an ACPI reboot boots it again.

Plain libvirt-python and a hand-written domain XML: nothing of sfmesh's own
runs here, so a failure points at the guest image (or the host), not at the
node agent. Domains are TCG (`type='qemu'`): this host's /dev/kvm cannot run
a stock Linux guest.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import libvirt
import pytest

from guests.testguest import ensure_test_guest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = REPO / "build" / "guests"

BOOT_TIMEOUT = 120.0  # TCG boot is ~7 s; leave room for a busy machine
READY_TIMEOUT = 60.0  # after BOOT
STOP_TIMEOUT = 60.0  # ACPI shutdown takes ~4 s

BOOT_RE = re.compile(r"^TESTGUEST BOOT kernel=(\S+) boot_id=(\S+) t=([\d.]+)\r?$", re.M)
READY_RE = re.compile(r"^TESTGUEST READY t=([\d.]+)\r?$", re.M)
CONFIGDRIVE_RE = re.compile(r"^TESTGUEST CONFIGDRIVE (.*?)\r?$", re.M)
SHUTDOWN_RE = re.compile(r"^TESTGUEST SHUTDOWN t=([\d.]+)\r?$", re.M)
ACPI_RE = re.compile(r"^TESTGUEST ACPI power-button t=([\d.]+)\r?$", re.M)


@pytest.fixture(scope="module")
def guest_image() -> Path:
    """The test guest's raw image, built once (and only when its sources changed)."""
    return ensure_test_guest(BUILD_DIR)


@pytest.fixture(scope="module")
def conn() -> Iterator[libvirt.virConnect]:
    """A connection to the system libvirtd."""
    connection = libvirt.open("qemu:///system")
    yield connection
    connection.close()


@dataclass
class Guest:
    """A running test-guest domain and the files it uses."""

    dom: libvirt.virDomain
    serial: Path
    started: float  # time.monotonic() just before dom.create()

    def console(self) -> str:
        """Everything on the serial console so far."""
        try:
            return self.serial.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: re.Pattern[str], timeout: float, count: int = 1) -> list[str]:
        """Wait until `pattern` has matched `count` times on the console;
        return all matches' full lines. Fails with the console on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            matches = [m.group(0).rstrip("\r") for m in pattern.finditer(self.console())]
            if len(matches) >= count:
                return matches
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{pattern.pattern!r} seen {len(matches)} times, wanted {count},"
                    f" after {timeout:.0f} s; console:\n{self.console()}"
                )
            time.sleep(0.1)

    def wait_stopped(self, timeout: float) -> float:
        """Wait until the domain is shut off; return when that happened (monotonic)."""
        deadline = time.monotonic() + timeout
        while self.dom.isActive():
            if time.monotonic() > deadline:
                pytest.fail(f"domain still running after {timeout:.0f} s:\n{self.console()}")
            time.sleep(0.1)
        return time.monotonic()


def field(pattern: re.Pattern[str], line: str, group: int) -> str:
    """One group of `pattern` matched against a console line."""
    match = pattern.search(line)
    assert match is not None, f"{pattern.pattern!r} does not match {line!r}"
    return match.group(group)


def make_config_drive(tree: Path, iso: Path, meta: dict[str, str]) -> None:
    """An OpenStack config drive: an ISO9660 volume labelled config-2 holding
    openstack/latest/meta_data.json."""
    latest = tree / "openstack" / "latest"
    latest.mkdir(parents=True)
    (latest / "meta_data.json").write_text(json.dumps(meta))
    subprocess.run(
        ["genisoimage", "-quiet", "-o", str(iso), "-V", "config-2", "-r", "-J", str(tree)],
        check=True,
    )


def domain_xml(name: str, disk: Path, serial: Path, config_iso: Path | None) -> str:
    """A minimal TCG domain: pc machine, 128 MiB, the disk on virtio, an
    optional config drive as an IDE cdrom, COM1 to a file, no NIC."""
    cdrom = ""
    if config_iso is not None:
        cdrom = f"""
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{config_iso}'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>"""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
      <boot order='1'/>
    </disk>{cdrom}
    <serial type='file'>
      <source path='{serial}'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


class StartGuest(Protocol):
    """The `start_guest` fixture's factory."""

    def __call__(self, config_iso: Path | None = None) -> Guest: ...


@pytest.fixture
def start_guest(
    conn: libvirt.virConnect, guest_image: Path, qemu_tmp: Path
) -> Iterator[StartGuest]:
    """A factory: `start_guest(config_iso=None)` defines and starts a domain
    on a qcow2 overlay of the test guest. Every domain it made is destroyed
    and undefined afterwards, whatever happened."""
    # qemu runs as libvirt-qemu and can reach only qemu_tmp: the base image
    # goes there too, under the overlay.
    base = qemu_tmp / "testguest.raw"
    shutil.copyfile(guest_image, base)
    domains: list[libvirt.virDomain] = []

    def start(config_iso: Path | None = None) -> Guest:
        name = f"sfmesh-test-{uuid.uuid4()}"
        overlay = qemu_tmp / f"{name}.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(overlay)],
            check=True,
        )
        serial = qemu_tmp / f"{name}.serial"
        dom = conn.defineXML(domain_xml(name, overlay, serial, config_iso))
        domains.append(dom)
        started = time.monotonic()
        dom.create()
        return Guest(dom=dom, serial=serial, started=started)

    try:
        yield start
    finally:
        for dom in domains:
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()  # fails only when it is not running
            dom.undefine()


def test_boot_config_drive_and_acpi_shutdown(
    start_guest: StartGuest, qemu_tmp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BOOT, CONFIGDRIVE (with the drive's uuid and hostname) and READY come
    out; an ACPI shutdown runs the guest's shutdown and stops the domain."""
    instance_uuid = str(uuid.uuid4())
    iso = qemu_tmp / "config.iso"
    make_config_drive(
        tmp_path / "config", iso, {"uuid": instance_uuid, "hostname": "guesttest-vm1.example"}
    )
    guest = start_guest(config_iso=iso)

    (boot,) = guest.wait_for(BOOT_RE, BOOT_TIMEOUT)
    booted = time.monotonic()
    guest.wait_for(READY_RE, READY_TIMEOUT)
    ready = time.monotonic()
    assert "kernel=6.1." in boot

    (configdrive,) = guest.wait_for(CONFIGDRIVE_RE, 0)
    assert f"uuid={instance_uuid} " in configdrive
    assert "hostname=guesttest-vm1.example " in configdrive
    assert "user_data_sha256=none" in configdrive

    guest.dom.shutdown()  # ACPI power button: no guest agent here
    pressed = time.monotonic()
    stopped = guest.wait_stopped(STOP_TIMEOUT)
    guest.wait_for(ACPI_RE, 0)
    guest.wait_for(SHUTDOWN_RE, 0)
    state, reason = guest.dom.state()
    assert state == libvirt.VIR_DOMAIN_SHUTOFF
    assert reason == libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN  # the guest's own poweroff

    with capsys.disabled():
        print(
            f"\ntestguest: create->BOOT {booted - guest.started:.1f} s,"
            f" BOOT->READY {ready - booted:.1f} s,"
            f" shutdown->stopped {stopped - pressed:.1f} s"
        )


def test_acpi_reboot_without_config_drive(
    start_guest: StartGuest, capsys: pytest.CaptureFixture[str]
) -> None:
    """With neither NIC nor config drive READY follows BOOT at once; an ACPI
    reboot shuts the guest down and boots it again (a new boot_id) in the
    same running domain."""
    guest = start_guest()

    (first,) = guest.wait_for(BOOT_RE, BOOT_TIMEOUT)
    booted = time.monotonic()
    (ready,) = guest.wait_for(READY_RE, READY_TIMEOUT)
    assert guest.wait_for(CONFIGDRIVE_RE, 0) == ["TESTGUEST CONFIGDRIVE none"]
    # Guest uptimes: drivers load and the config-drive look is short (~1.5 s
    # in all on an idle host); a DHCP wait would add 10 s. The bound leaves
    # room for a host busy with other TCG guests.
    boot_t = float(field(BOOT_RE, first, 3))
    ready_t = float(field(READY_RE, ready, 1))
    assert ready_t - boot_t < 6.0, f"READY came {ready_t - boot_t:.2f} s after BOOT"

    domain_id = guest.dom.ID()
    guest.dom.reboot()  # no guest agent: libvirt presses the ACPI power button
    pressed = time.monotonic()
    boots = guest.wait_for(BOOT_RE, BOOT_TIMEOUT, count=2)
    rebooted = time.monotonic()
    guest.wait_for(READY_RE, READY_TIMEOUT, count=2)

    boot_ids = [field(BOOT_RE, line, 2) for line in boots]
    assert boot_ids[0] != boot_ids[1]
    # The first boot was shut down cleanly before the second began.
    console = guest.console()
    assert console.index("TESTGUEST SHUTDOWN") < console.index(boots[1])
    # libvirt's "fake reboot" resets the same qemu process: never stopped.
    assert guest.dom.isActive()
    assert guest.dom.ID() == domain_id

    with capsys.disabled():
        print(
            f"\ntestguest: create->BOOT {booted - guest.started:.1f} s,"
            f" BOOT->READY (guest) {ready_t - boot_t:.2f} s,"
            f" reboot->second BOOT {rebooted - pressed:.1f} s"
        )
