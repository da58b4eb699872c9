"""Certificates for meshes on this machine (`python -m devmesh --tls`,
tests): a CA kept in a folder of its own, made on first use, and a host's
certificates issued from it for loopback, as `python -m launcher.ca init`
and `issue` make them for a real host."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from launcher.ca import CA_KEY, Authority, make_authority, write_authority, write_host
from launcher.tls import TlsDir

CA_NAME = "sfmesh devmesh CA"


def authority(folder: Path) -> Authority:
    """The CA in `folder`: the one made there before, or a new one."""
    if (folder / CA_KEY).exists():
        return Authority.load(folder)
    made = make_authority(CA_NAME)
    write_authority(made, folder)
    return made


def issue(ca: Path, out: Path, host: str, roles: Iterable[str]) -> TlsDir:
    """Certificates for `roles` of `host` on loopback, from the CA in `ca`
    (made if missing), into `out` (what `[tls] dir` names)."""
    write_host(authority(ca), out, host, roles, ())
    return TlsDir(out)
