"""devmesh/certificates.py: one CA per folder, kept across starts, and a
host's certificates from it that the launcher takes."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from devmesh.certificates import issue
from launcher.config import load_config
from launcher.toml_text import render


def common_name(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return str(cert.subject.rfc4514_string())


def test_the_ca_is_made_once_and_each_host_gets_its_roles(tmp_path: Path) -> None:
    first = issue(tmp_path / "ca", tmp_path / "a", "a", ["etcd", "api"])
    second = issue(tmp_path / "ca", tmp_path / "b", "b", ["gateway"])
    assert first.ca.read_bytes() == second.ca.read_bytes() == (tmp_path / "ca/ca.crt").read_bytes()
    assert common_name(first.cert("api")) == "CN=api@a"
    assert common_name(second.cert("gateway")) == "CN=gateway@b"
    assert not second.cert("api").exists()


def test_the_launcher_takes_what_was_issued(tmp_path: Path) -> None:
    tls = issue(tmp_path / "ca", tmp_path / "tls", "n1", ["eventlog"])
    path = tmp_path / "host.toml"
    document: dict[str, dict[str, object]] = {
        "host": {"name": "n1", "roles": ["eventlog"]},
        "tls": {"dir": str(tls.folder)},
    }
    path.write_text(render(document))
    assert load_config(path, hostname="x").tls == tls
