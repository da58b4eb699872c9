"""`python -m launcher.ca`: the mesh's certificate authority, small on purpose.

`init` makes a CA (an ECDSA P-256 key and a self-signed certificate) in a
folder kept off the hosts. `issue` makes, for one host, a certificate and
key per role it runs, signed by that CA, in a folder the host's config
names as `[tls] dir`:

    ca.crt                 the CA's certificate (what every process trusts)
    <role>.crt, <role>.key one per role, e.g. api.crt, node_agent.key

Each certificate's common name is `<role>@<host>`: the identity a service
proves on internal RPCs (``services/common/transport.py``). Its subject
alternative names are the host's name and addresses, with `localhost` and
127.0.0.1 (services reach each other on loopback on one host), so a peer
dialling any of them can check it, and the role's own name (`api.sfmesh`),
which a client balancing over several replicas checks. Each is good for both ends of a TLS
connection (server and client), as a mesh process is both.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from launcher.roles import ROLES
from services.common.transport import role_name

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
CA_DAYS = 3650
HOST_DAYS = 825
LOOPBACK_NAMES = ("localhost", "127.0.0.1")

Name = x509.DNSName | x509.IPAddress


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, folder: Path) -> Authority:
        """The CA `init` made in `folder`."""
        cert = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{folder / CA_KEY}: not an ECDSA key")
        return cls(cert, key)


def make_authority(name: str, *, days: int = CA_DAYS) -> Authority:
    """A new CA named `name`. Pure but for the randomness."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def subject_names(host: str, addresses: Iterable[str]) -> list[Name]:
    """The subject alternative names of a host's certificates: its name,
    its addresses (IP or DNS), and loopback; each once. ValueError for an
    empty name."""
    names: list[Name] = []
    for text in (host, *addresses, *LOOPBACK_NAMES):
        text = text.strip()
        if not text:
            raise ValueError("an empty host name or address")
        try:
            entry: Name = x509.IPAddress(ipaddress.ip_address(text))
        except ValueError:
            entry = x509.DNSName(text)
        if entry not in names:
            names.append(entry)
    return names


def issue(
    authority: Authority, role: str, host: str, names: Sequence[Name], *, days: int = HOST_DAYS
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate and key for `role` on `host`, signed by `authority`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{role}@{host}")]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([*names, x509.DNSName(role_name(role))]), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    return cert, key


def write_authority(authority: Authority, folder: Path) -> None:
    """Write the CA into `folder` (its key readable by the owner only);
    FileExistsError rather than replace one."""
    for name in (CA_KEY, CA_CERT):
        if (folder / name).exists():
            raise FileExistsError(17, "exists", str(folder / name))
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / CA_KEY, _key_pem(authority.key), private=True)
    _write(folder / CA_CERT, authority.cert.public_bytes(serialization.Encoding.PEM))


def write_host(
    authority: Authority,
    out: Path,
    host: str,
    roles: Iterable[str],
    addresses: Iterable[str],
    *,
    days: int = HOST_DAYS,
) -> list[Path]:
    """Issue a certificate per role of `host` into `out`, with the CA's
    certificate; the files written. Existing files are replaced (a re-issue)."""
    names = subject_names(host, addresses)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / CA_CERT]
    _write(written[0], authority.cert.public_bytes(serialization.Encoding.PEM), replace=True)
    for role in roles:
        cert, key = issue(authority, role, host, names, days=days)
        key_path, cert_path = out / f"{role}.key", out / f"{role}.crt"
        _write(key_path, _key_pem(key), private=True, replace=True)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), replace=True)
        written += [cert_path, key_path]
    return written


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool = False, replace: bool = False) -> None:
    """Write `data` to `path` through a new file (mode 0600 when `private`),
    renamed over it when `replace`, refused when not and it exists."""
    draft = path.with_name(f".{path.name}.new")
    draft.unlink(missing_ok=True)
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    if replace:
        draft.replace(path)
        return
    try:
        os.link(draft, path)
    except FileExistsError as exc:
        raise FileExistsError(exc.errno, exc.strerror, str(path)) from None
    finally:
        draft.unlink()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def main(argv: list[str] | None = None) -> int:
    """`init` or `issue`; 2 with a message for what cannot be done."""
    summary = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m launcher.ca", description=summary)
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="make a mesh CA in a new folder")
    init.add_argument("--dir", type=Path, required=True, help="where the CA's files go")
    init.add_argument("--name", default="sfmesh mesh CA", help="the CA's common name")
    init.add_argument("--days", type=int, default=CA_DAYS, help="how long it is valid")
    host = commands.add_parser("issue", help="certificates for one host's roles")
    host.add_argument("--ca-dir", type=Path, required=True, help="the folder `init` made")
    host.add_argument("--host", required=True, help="the host's name (its [host] name)")
    host.add_argument(
        "--address",
        action="append",
        default=[],
        help="an address or DNS name peers reach the host at (repeat for several)",
    )
    host.add_argument(
        "--roles",
        required=True,
        help=f"comma-separated roles, of: {', '.join(ROLES)}",
    )
    host.add_argument("--out", type=Path, required=True, help="the host's [tls] dir")
    host.add_argument("--days", type=int, default=HOST_DAYS, help="how long they are valid")
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            write_authority(make_authority(args.name, days=args.days), args.dir)
            print(f"a mesh CA in {args.dir}: keep {args.dir / CA_KEY} off the hosts")
            return 0
        roles = [r.strip() for r in args.roles.split(",") if r.strip()]
        unknown = [r for r in roles if r not in ROLES]
        if unknown or not roles:
            print(f"sfmesh ca: --roles: unknown {unknown or 'none given'}", file=sys.stderr)
            return 2
        written = write_host(
            Authority.load(args.ca_dir), args.out, args.host, roles, args.address, days=args.days
        )
    except FileExistsError as exc:
        print(f"sfmesh ca: {exc.filename} exists: nothing replaced", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"sfmesh ca: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
