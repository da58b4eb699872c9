"""etcd's client endpoints as a service is given them: one `host:port`, or
several separated by commas (`10.0.0.1:13379,10.0.0.2:13379`), the members of
one cluster. Pure."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def parse_endpoints(text: str) -> tuple[str, ...]:
    """The endpoints of a comma-separated list, in order, each `host:port`
    (an IPv6 host in brackets). ArgumentTypeError, naming the culprit, for an
    empty list, an empty entry, a missing or bad port, or an endpoint listed
    twice."""
    entries = [entry.strip() for entry in text.split(",")]
    if entries == [""]:
        raise argparse.ArgumentTypeError("no etcd endpoint: give host:port[,host:port...]")
    for entry in entries:
        check_endpoint(entry)
    return unique_endpoints(entries)


def check_endpoint(entry: str) -> None:
    """ArgumentTypeError unless `entry` is `host:port`."""
    if not entry:
        raise argparse.ArgumentTypeError("an empty etcd endpoint (two commas, or one at an end)")
    host, colon, port = entry.rpartition(":")
    if not colon or not host or host == "[]":
        raise argparse.ArgumentTypeError(f"etcd endpoint {entry!r}: not host:port")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise argparse.ArgumentTypeError(f"etcd endpoint {entry!r}: put an IPv6 host in brackets")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"etcd endpoint {entry!r}: the port is not 1-65535")


def unique_endpoints(entries: Sequence[str]) -> tuple[str, ...]:
    """`entries` as a tuple; ArgumentTypeError when one is listed twice."""
    for n, entry in enumerate(entries):
        if entry in entries[:n]:
            raise argparse.ArgumentTypeError(f"etcd endpoint {entry!r} is listed twice")
    return tuple(entries)
