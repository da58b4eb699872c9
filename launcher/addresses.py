"""`host:port` addresses as a host config writes them. Pure."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

WILDCARDS = ("0.0.0.0", "::")
"""Hosts that mean "every address of this machine": fine to listen on,
never an address another process can dial."""
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class Address:
    """Where something listens or is reached."""

    host: str
    """An IPv4 or IPv6 literal (without brackets) or a DNS name."""
    port: int
    """1 to 65535."""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def wildcard(self) -> bool:
        """Whether it listens on every address of the machine."""
        return self.host in WILDCARDS

    def local(self) -> Address:
        """Where a process on this machine dials it: loopback for a wildcard."""
        if not self.wildcard:
            return self
        return Address("::1" if ":" in self.host else "127.0.0.1", self.port)

    def overlaps(self, other: Address) -> bool:
        """Whether two listeners on this machine would collide: the same
        port, on the same host or with either on every address."""
        if self.port != other.port:
            return False
        return self.host == other.host or self.wildcard or other.wildcard


def parse_address(text: object) -> Address:
    """`host:port` or `[v6]:port` as an Address; ValueError saying why not."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a host:port string")
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not _is_ip(host, version=6):
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address")
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 host in brackets, [{host}]:port")
    elif not (_is_ip(host) or _is_name(host)):
        raise ValueError(f"{text!r}: {host!r} is neither an IP address nor a host name")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return Address(host, int(port_text))


def _is_ip(host: str, version: int | None = None) -> bool:
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return False
    return version is None or parsed.version == version


def _is_name(host: str) -> bool:
    """A DNS name: dot-separated labels of letters, digits and inner
    hyphens, not all digits (that would be a malformed IPv4 address)."""
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return False
    return not all(label.isdigit() for label in labels)
