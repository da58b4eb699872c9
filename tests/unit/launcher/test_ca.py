"""launcher/ca.py: what a host's certificates say (common name, subject
alternative names, usages, issuer), and that `init` never replaces a CA."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from launcher import ca


@pytest.fixture(scope="module")
def authority() -> ca.Authority:
    return ca.make_authority("test mesh CA")


def common_name(cert: x509.Certificate) -> str:
    (attribute,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attribute.value)


def test_a_role_certificate_names_role_host_and_every_address(
    authority: ca.Authority, tmp_path: Path
) -> None:
    written = ca.write_host(
        authority, tmp_path, "cp1", ["api", "node_agent"], ["10.0.0.1", "cp1.example.com"]
    )
    assert {path.name for path in written} == {
        "ca.crt",
        "api.crt",
        "api.key",
        "node_agent.crt",
        "node_agent.key",
    }
    cert = x509.load_pem_x509_certificate((tmp_path / "node_agent.crt").read_bytes())
    assert common_name(cert) == "node_agent@cp1"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "cp1",
        "cp1.example.com",
        "localhost",
        "node_agent.sfmesh",
    ]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("127.0.0.1"),
    ]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == authority.cert.subject
    cert.verify_directly_issued_by(authority.cert)
    assert (tmp_path / "ca.crt").read_bytes() == (
        authority.cert.public_bytes(serialization.Encoding.PEM)
    )
    assert (tmp_path / "api.key").stat().st_mode & 0o777 == 0o600


def test_the_key_matches_its_certificate(authority: ca.Authority) -> None:
    cert, key = ca.issue(authority, "scheduler", "h", ca.subject_names("h", []))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert cert.public_key() == key.public_key()


def test_init_refuses_to_replace_a_ca(tmp_path: Path) -> None:
    assert ca.main(["init", "--dir", str(tmp_path / "ca")]) == 0
    first = (tmp_path / "ca" / "ca.key").read_bytes()
    assert ca.main(["init", "--dir", str(tmp_path / "ca")]) == 2
    assert (tmp_path / "ca" / "ca.key").read_bytes() == first
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600


def test_issue_refuses_an_unknown_role(tmp_path: Path) -> None:
    assert ca.main(["init", "--dir", str(tmp_path / "ca")]) == 0
    out = tmp_path / "host"
    args = ["issue", "--ca-dir", str(tmp_path / "ca"), "--host", "h", "--out", str(out)]
    assert ca.main([*args, "--roles", "api,nonsense"]) == 2
    assert not out.exists()
    assert ca.main([*args, "--roles", "api,etcd"]) == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "api.crt",
        "api.key",
        "ca.crt",
        "etcd.crt",
        "etcd.key",
    ]
