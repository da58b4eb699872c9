"""services/node_agent/dnsmasq.py without the kernel: the hosts file, and
which process counts as a network's dnsmasq."""

from __future__ import annotations

import ipaddress
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.node_agent.dnsmasq import Dnsmasq, hosts_text

NETWORK = ipaddress.IPv4Network("10.250.0.0/24")
GATEWAY = ipaddress.IPv4Address("10.250.0.1")


def test_hosts_text_is_one_lowercase_pin_a_line_sorted() -> None:
    pins = {"52:54:00:00:00:0A": "10.250.0.254", "52:54:00:00:00:02": "10.250.0.9"}
    assert hosts_text(NETWORK, GATEWAY, pins) == (
        "52:54:00:00:00:02,10.250.0.9\n52:54:00:00:00:0a,10.250.0.254\n"
    )
    assert hosts_text(NETWORK, GATEWAY, {}) == ""


@pytest.mark.parametrize(
    "pins",
    [
        {"52:54:00:00:00:0g": "10.250.0.9"},
        {"52:54:00:00:00:02\n": "10.250.0.9"},
        {"52:54:00:00:00:02": "10.250.1.9"},
        {"52:54:00:00:00:02": "10.250.0.0"},  # the network's address
        {"52:54:00:00:00:02": "10.250.0.1"},  # the gateway
        {"52:54:00:00:00:02": "10.250.0.255"},
        {"52:54:00:00:00:02": "10.250.0.9,ignore"},
        {"52:54:00:00:00:02": "10.250.0.9", "52:54:00:00:00:03": "10.250.0.9"},
    ],
)
def test_hosts_text_refuses_bad_pins(pins: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        hosts_text(NETWORK, GATEWAY, pins)


def test_set_hosts_replaces_a_world_readable_file_in_traversable_folders(
    tmp_path: Path,
) -> None:
    dnsmasq = Dnsmasq(tmp_path / "networks" / "n")
    dnsmasq.set_hosts("52:54:00:00:00:02,10.250.0.9\n")
    assert dnsmasq.hosts_file.read_text() == "52:54:00:00:00:02,10.250.0.9\n"
    assert stat.S_IMODE(dnsmasq.hosts_file.stat().st_mode) == 0o644
    assert stat.S_IMODE(dnsmasq.folder.stat().st_mode) == 0o755
    assert stat.S_IMODE(dnsmasq.folder.parent.stat().st_mode) == 0o755
    dnsmasq.set_hosts("")
    assert dnsmasq.hosts_file.read_text() == ""
    assert sorted(path.name for path in dnsmasq.folder.iterdir()) == ["hosts"]


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not a dnsmasq."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def test_none_runs_without_a_pid_file_or_with_a_bad_one(tmp_path: Path) -> None:
    dnsmasq = Dnsmasq(tmp_path)
    assert dnsmasq.pid() is None
    dnsmasq.pid_file.write_text("not a pid\n")
    assert dnsmasq.pid() is None


async def test_a_pid_file_naming_another_program_is_not_its_dnsmasq(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    dnsmasq = Dnsmasq(tmp_path)
    dnsmasq.pid_file.write_text(f"{stranger.pid}\n")
    assert dnsmasq.pid() is None
    await dnsmasq.stop()  # nothing to stop: the stranger lives on
    dnsmasq.set_hosts("")  # nor to SIGHUP
    assert stranger.poll() is None
