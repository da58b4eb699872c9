"""The multi-host layer's virtual LAN: a bridge in the root namespace and,
per host, a network namespace joined to it by a veth, holding an address of
its own. The root namespace holds an address on the bridge too, so the
tests (and the image server they give the hypervisors) reach every host.

Every name starts with `PREFIX`, so `remove_lan` finds what an earlier run
left (a killed pytest leaves its namespaces and links behind) and removes it
before a new LAN is built.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
from collections.abc import Mapping

PREFIX = "sfmh-"
"""The start of every namespace and link of the LAN."""
BRIDGE = f"{PREFIX}lan"
NETBLOCK = ipaddress.IPv4Network("10.213.0.0/24")
"""The LAN's addresses: clear of every netblock the other test layers use."""
ROOT_ADDRESS = "10.213.0.1"
"""The root namespace's address on the LAN: where the tests are."""
DEVICE = "lan0"
"""Each host's end of its veth, inside its namespace."""


def ip(*argv: str) -> None:
    """Run `ip` with `argv`; CalledProcessError with its message on a failure."""
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


def netns(host: str) -> str:
    """The network namespace of `host`."""
    return f"{PREFIX}{host}"


def create_lan(addresses: Mapping[str, str]) -> None:
    """The bridge, the root namespace's address on it, and a namespace per
    host (`addresses`: host name → its address on the LAN) with loopback up."""
    prefix = NETBLOCK.prefixlen
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("addr", "add", f"{ROOT_ADDRESS}/{prefix}", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
    for host, address in addresses.items():
        space, outer = netns(host), f"{PREFIX}{host}"
        ip("netns", "add", space)
        ip("-n", space, "link", "set", "lo", "up")
        ip("link", "add", outer, "master", BRIDGE, "type", "veth", "peer", "name", DEVICE,
           "netns", space)  # fmt: skip
        ip("link", "set", outer, "up")
        ip("-n", space, "addr", "add", f"{address}/{prefix}", "dev", DEVICE)
        ip("-n", space, "link", "set", DEVICE, "up")


def pids(space: str) -> list[int]:
    """The processes in the namespace `space`."""
    done = subprocess.run(["ip", "netns", "pids", space], capture_output=True, text=True)
    return [int(word) for word in done.stdout.split()]


def kill_netns(space: str) -> list[int]:
    """SIGKILL every process in the namespace `space` at once: a host lost
    whole. Returns their pids."""
    doomed = pids(space)
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return doomed


def remove_lan() -> None:
    """Remove every namespace (killing what runs in it) and link of the LAN,
    this run's or an earlier one's."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for space in (line.split()[0] for line in listed.splitlines() if line.strip()):
        if space.startswith(PREFIX):
            kill_netns(space)
            subprocess.run(["ip", "netns", "delete", space], capture_output=True)
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(": ")[1].split("@")[0]
        if name.startswith(PREFIX):
            subprocess.run(["ip", "link", "delete", name], capture_output=True)
