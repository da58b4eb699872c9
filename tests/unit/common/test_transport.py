"""services/common/transport.py: which TLS files turn TLS on, and the
identity a certificate's common name carries."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.transport import Identity, TlsConfigError, Transport


def pem_files(folder: Path) -> tuple[str, str, str]:
    paths = [folder / name for name in ("ca.crt", "api.crt", "api.key")]
    for path in paths:
        path.write_bytes(b"-----BEGIN PEM-----")
    return (str(paths[0]), str(paths[1]), str(paths[2]))


def test_no_tls_file_means_plaintext() -> None:
    assert not Transport.from_settings("", "", "").secure
    assert Transport.from_settings("", "", "") == Transport()


def test_all_three_files_mean_tls(tmp_path: Path) -> None:
    ca, cert, key = pem_files(tmp_path)
    transport = Transport.from_settings(ca, cert, key)
    assert transport.secure
    assert transport.tls is not None
    assert transport.tls.ca == b"-----BEGIN PEM-----"
    assert (transport.tls.cert_path, transport.tls.key_path) == (Path(cert), Path(key))


@pytest.mark.parametrize("given", [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2)])
def test_some_files_without_the_others_are_refused(tmp_path: Path, given: tuple[int, ...]) -> None:
    files = pem_files(tmp_path)
    chosen = [path if index in given else "" for index, path in enumerate(files)]
    with pytest.raises(TlsConfigError, match="go together"):
        Transport.from_settings(*chosen)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    ca, cert, _ = pem_files(tmp_path)
    with pytest.raises(TlsConfigError, match=r"--tls-key .*missing\.key"):
        Transport.from_settings(ca, cert, str(tmp_path / "missing.key"))


@pytest.mark.parametrize(
    ("common_name", "identity"),
    [
        ("node_agent@host1", Identity("node_agent", "host1")),
        ("api@h.example.com", Identity("api", "h.example.com")),
        ("api@h@x", Identity("api", "h@x")),
        ("api", None),
        ("@host", None),
        ("api@", None),
        ("", None),
    ],
)
def test_identity_parse(common_name: str, identity: Identity | None) -> None:
    assert Identity.parse(common_name) == identity
    if identity is not None:
        assert identity.common_name == common_name
