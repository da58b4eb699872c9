"""The `[tls]` table of a host config, and what it gives each role.

    [tls]
    dir = "/etc/sfmesh/tls"

names the folder `python -m launcher.ca issue --out` wrote for this host:
the mesh CA's certificate (`ca.crt`) and a certificate and key per role
(`api.crt`, `api.key`, …). With it, every role presents its own
certificate (`<role>@<host>`) and trusts the CA's: our services get
`--tls-ca`, `--tls-cert` and `--tls-key`; etcd serves clients and peers
over https and asks each for a certificate of the CA; the launcher's
readiness checks speak TLS as that role. Without it, everything is
plaintext.

Pure but for `missing_files`, `transport` and `client_context`, which read
the files.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher import values
from launcher.ca import CA_CERT
from services.common.transport import TLS_SETTINGS, Transport

TLS_KEYS = ("dir",)
"""What `[tls]` takes."""


@dataclass(frozen=True)
class TlsDir:
    """This host's certificates: the folder of `[tls] dir`."""

    folder: Path

    @property
    def ca(self) -> Path:
        """The mesh CA's certificate."""
        return self.folder / CA_CERT

    def cert(self, role: str) -> Path:
        """`role`'s certificate on this host."""
        return self.folder / f"{role}.crt"

    def key(self, role: str) -> Path:
        """The key of `role`'s certificate."""
        return self.folder / f"{role}.key"

    def files(self, roles: Iterable[str]) -> list[Path]:
        """What `roles` need: the CA's certificate, each role's certificate and key."""
        return [self.ca, *(path for role in roles for path in (self.cert(role), self.key(role)))]


def tls_dir(problems: list[str], document: Mapping[str, Any]) -> TlsDir | None:
    """The `[tls]` table of a host config; None without one."""
    if "tls" not in document:
        return None
    table = values.table(problems, document, "tls")
    values.unknown_keys(problems, "tls", table, TLS_KEYS)
    if "dir" not in table:
        problems.append("tls.dir: required: the folder `python -m launcher.ca issue --out` wrote")
        return None
    return TlsDir(values.absolute_path(problems, "tls.dir", table["dir"]))


def missing_files(tls: TlsDir, roles: Iterable[str], *, host: str, address: str) -> list[str]:
    """A problem for each file `roles` of `host` (at `address`) need that
    `tls` lacks, saying how to make them."""
    roles = list(roles)
    missing = [path for path in tls.files(roles) if not path.is_file()]
    issue = (
        f"python -m launcher.ca issue --ca-dir CA --host {host} --address {address}"
        f" --roles {','.join(roles)} --out {tls.folder}"
    )
    return [f"tls.dir: {path} is missing (`{issue}` writes it)" for path in missing]


def service_flags(tls: TlsDir | None, role: str) -> list[str]:
    """The TLS flags of one of our services: its own certificate, and the CA."""
    if tls is None:
        return []
    paths = (tls.ca, tls.cert(role), tls.key(role))
    return [f"{setting.flag}={path}" for setting, path in zip(TLS_SETTINGS, paths, strict=True)]


def etcd_flags(tls: TlsDir | None) -> list[str]:
    """etcd's: client and peer TLS with the etcd role's certificate, and a
    certificate of the mesh CA asked of every client and peer."""
    if tls is None:
        return []
    cert, key, ca = tls.cert("etcd"), tls.key("etcd"), tls.ca
    return [
        f"--cert-file={cert}",
        f"--key-file={key}",
        f"--trusted-ca-file={ca}",
        "--client-cert-auth",
        f"--peer-cert-file={cert}",
        f"--peer-key-file={key}",
        f"--peer-trusted-ca-file={ca}",
        "--peer-client-cert-auth",
    ]


def scheme(tls: TlsDir | None) -> str:
    """`https` with TLS, else `http`: etcd's URLs, the gateway's."""
    return "http" if tls is None else "https"


def transport(tls: TlsDir | None, role: str) -> Transport:
    """How the launcher calls `role` (its health): as `role`, with its certificate."""
    if tls is None:
        return Transport()
    return Transport.from_settings(str(tls.ca), str(tls.cert(role)), str(tls.key(role)))


def client_context(tls: TlsDir | None, role: str) -> ssl.SSLContext | None:
    """An HTTPS client context trusting the mesh CA and presenting `role`'s
    certificate (etcd asks for one); None without TLS."""
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=tls.ca)
    context.load_cert_chain(tls.cert(role), tls.key(role))
    return context
