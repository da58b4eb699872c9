"""Certificates for TLS tests, made by `launcher/ca.py` in a temporary
folder, as `python -m launcher.ca issue` lays them out for a host."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from launcher.ca import make_authority, write_host
from launcher.tls import TlsDir, transport
from services.common.transport import Transport

HOST = "testhost"
"""The host every test certificate names (`<role>@testhost`)."""


@dataclass(frozen=True)
class Pki(TlsDir):
    """One host's folder of certificates (ca.crt, <role>.crt, <role>.key), as
    a host's `[tls] dir` holds them."""

    def transport(self, role: str) -> Transport:
        """The transport of a process of `role` on the host."""
        return transport(self, role)

    def presenting(self, other: Pki, role: str) -> Transport:
        """A transport trusting this CA but presenting `other`'s certificate
        for `role`: a stranger's, when `other` has its own CA."""
        theirs = other.transport(role).tls
        assert theirs is not None
        return Transport(dataclasses.replace(theirs, ca=self.ca.read_bytes()))


def make_pki(folder: Path, roles: Sequence[str], *, name: str = "sfmesh test CA") -> Pki:
    """A new CA, and certificates for `roles` on HOST in `folder`."""
    write_host(make_authority(name), folder, HOST, roles, [])
    return Pki(folder)
