"""Every port a host needs, checked before anything starts."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

from launcher.addresses import Address


class CannotListen(RuntimeError):
    """A role of this host could not listen where its config says."""


class PortInUse(CannotListen):
    """A port a role needs is taken: a leftover mesh, or another program."""


class NotThisHost(CannotListen):
    """A role is told to listen on an address this machine does not have."""


def check_ports(listeners: Iterable[tuple[str, Address]]) -> None:
    """Raise PortInUse (or NotThisHost) naming the first listener, as
    `(key, address)` from `config.bindings`, that cannot bind its address."""
    for key, address in listeners:
        role = describe(key)
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        with socket.socket(family) as probe:
            # Lingering TIME_WAIT connections do not count; a listener does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address.host, address.port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(
                        f"port {address.port} ({role}) is already in use on {address.host}"
                    ) from None
                raise NotThisHost(
                    f"{address} ({role}, {key}): cannot listen there: {exc.strerror}"
                ) from None


def describe(key: str) -> str:
    """How a message names a listener: `api.listen` → api, `etcd.peer` → etcd peer."""
    role, _, which = key.partition(".")
    return role if which == "listen" else f"{role} {which}"
