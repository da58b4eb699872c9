"""One network's DHCP server on one node: a dnsmasq inside the network's
namespace that hands out only the pinned addresses (static mode, DNS off).
`dataplane.py` decides when a network has one; this module starts, reloads
and stops it.

dnsmasq daemonizes (and so outlives an agent restart); it is found again
through its pid file and stopped only when /proc shows the dnsmasq started
with that very pid file. Its files live in one folder per network
(`<state>/networks/<network uuid>/`): `hosts` (`<mac>,<ipv4>` a line,
re-read on SIGHUP), `leases`, `dnsmasq.pid`, `dnsmasq.log`. dnsmasq runs as
`nobody`, so every folder above `hosts` must be traversable by others.

It is started without a shell, through `ip netns exec <ns> dnsmasq`
(`commands.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import signal
from collections.abc import Mapping
from pathlib import Path

from services.node_agent.commands import DataPlaneError, run

STOP_WAIT = 5.0  # seconds dnsmasq gets to exit after SIGTERM, then after SIGKILL

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def hosts_text(
    network: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address, pins: Mapping[str, str]
) -> str:
    """dnsmasq's --dhcp-hostsfile for `pins` (MAC -> IPv4 address), one
    `<mac>,<ipv4>` a line, sorted. Raises ValueError on a bad MAC, an address
    that is not a guest address of `network` (its network, broadcast or
    `gateway` address), or an address pinned twice. Pure."""
    reserved = {network.network_address, network.broadcast_address, gateway}
    lines: dict[str, ipaddress.IPv4Address] = {}
    for mac, address in pins.items():
        if not _MAC.fullmatch(mac.lower()):
            raise ValueError(f"{mac!r} is not a MAC address")
        ip = ipaddress.IPv4Address(address)
        if ip not in network or ip in reserved:
            raise ValueError(f"{ip} is not a guest address of {network}")
        lines[mac.lower()] = ip
    if len(set(lines.values())) != len(lines):
        raise ValueError("an address is pinned to more than one MAC")
    return "".join(f"{mac},{ip}\n" for mac, ip in sorted(lines.items()))


class Dnsmasq:
    """The dnsmasq of one network on this node, known by its folder."""

    def __init__(self, folder: Path) -> None:
        """`folder` holds its files; it and its parent are made on demand."""
        self.folder = folder
        self.pid_file = folder / "dnsmasq.pid"
        self.hosts_file = folder / "hosts"
        self.leases_file = folder / "leases"
        self.log_file = folder / "dnsmasq.log"

    def pid(self) -> int | None:
        """The pid of the dnsmasq running with this folder's pid file, if any:
        the pid file's process counts only when its command line names that
        file."""
        try:
            pid = int(self.pid_file.read_text())
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        ours = (
            os.path.basename(argv[0]) == b"dnsmasq"
            and f"--pid-file={self.pid_file}".encode() in argv
        )
        return pid if ours else None

    async def start(
        self,
        *,
        netns: str,
        interface: str,
        network: ipaddress.IPv4Network,
        gateway: ipaddress.IPv4Address,
        mtu: int | None,
    ) -> None:
        """Start it in `netns`, serving `interface`, unless it runs; `mtu`,
        when given, is handed to guests (DHCP option 26). The hosts file is
        made empty when missing."""
        if self.pid() is not None:
            return
        _make_folders(self.folder)
        if not self.hosts_file.exists():
            _write_readable(self.hosts_file, "")
        options = [f"--dhcp-option-force=26,{mtu}"] if mtu else []  # asked for or not
        # dnsmasq returns once its daemon serves, or fails with the reason on stderr.
        await run(
            "ip", "netns", "exec", netns, "dnsmasq",
            "--conf-file=/dev/null",
            "--port=0",
            f"--interface={interface}",
            "--bind-interfaces",
            "--except-interface=lo",
            f"--dhcp-range={network.network_address},static,{network.netmask},1h",
            f"--dhcp-hostsfile={self.hosts_file}",
            f"--dhcp-option=3,{gateway}",
            *options,
            "--dhcp-authoritative",
            "--no-ping",
            f"--dhcp-leasefile={self.leases_file}",
            f"--pid-file={self.pid_file}",
            "--log-dhcp",
            f"--log-facility={self.log_file}",
        )  # fmt: skip

    def set_hosts(self, text: str) -> None:
        """Replace the hosts file atomically by `text` (see `hosts_text`) and
        have a running dnsmasq re-read it (SIGHUP)."""
        _make_folders(self.folder)
        _write_readable(self.hosts_file, text)
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    async def stop(self) -> None:
        """Stop it if it runs: SIGTERM, then SIGKILL. Raises DataPlaneError
        when it outlives both."""
        pid = self.pid()
        if pid is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            for _ in range(int(STOP_WAIT / 0.02)):
                if self.pid() != pid:
                    return
                await asyncio.sleep(0.02)
        raise DataPlaneError(f"dnsmasq {pid} did not stop")


def _make_folders(folder: Path) -> None:
    """`folder` and its parent, traversable by dnsmasq's user `nobody`."""
    for path in (folder.parent, folder):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)


def _write_readable(path: Path, text: str) -> None:
    """Replace `path` atomically by a file of `text` that anyone can read."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.chmod(0o644)
    temporary.replace(path)
