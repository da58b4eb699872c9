"""devmesh/client_config.py: ~/.shakenfist is written only when absent or ours."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import requests

from devmesh.client_config import CA_VARIABLE, MARKER, MARKER_VALUE, write_client_config

SETTINGS = {"apiurl": "http://127.0.0.1:13000", "namespace": "system", "key": "s3cret"}


def write(path: Path, **overrides: str) -> bool:
    settings = {**SETTINGS, **overrides}
    return write_client_config(
        path, apiurl=settings["apiurl"], namespace=settings["namespace"], key=settings["key"]
    )


def test_writes_when_absent(tmp_path: Path) -> None:
    path = tmp_path / ".shakenfist"
    assert write(path) is True
    assert json.loads(path.read_text()) == {**SETTINGS, MARKER: MARKER_VALUE}
    assert MARKER_VALUE == "sfmesh"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_replaces_a_file_sfmesh_wrote(tmp_path: Path) -> None:
    path = tmp_path / ".shakenfist"
    assert write(path)
    assert write(path, apiurl="http://127.0.0.1:14000", key="new-key") is True
    written = json.loads(path.read_text())
    assert written["apiurl"] == "http://127.0.0.1:14000"
    assert written["key"] == "new-key"
    assert written[MARKER] == MARKER_VALUE


def test_shorter_rewrite_leaves_no_tail(tmp_path: Path) -> None:
    path = tmp_path / ".shakenfist"
    assert write(path, key="k" * 500)
    assert write(path, key="k")
    assert json.loads(path.read_text())["key"] == "k"


@pytest.mark.parametrize(
    "content",
    [
        '{"namespace": "mine", "key": "theirs", "apiurl": "https://sf.example.com"}',
        '{"written_by": "someone-else", "namespace": "x"}',
        "[1, 2, 3]",
        '"just a string"',
        "this is not json",
        "",
    ],
)
def test_leaves_someone_elses_file_alone(tmp_path: Path, content: str) -> None:
    path = tmp_path / ".shakenfist"
    path.write_text(content)
    path.chmod(0o644)
    assert write(path) is False
    assert path.read_text() == content
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_unreadable_path_left_alone(tmp_path: Path) -> None:
    path = tmp_path / ".shakenfist"
    path.mkdir()
    assert write(path) is False
    assert path.is_dir()


def test_home_is_isolated(isolated_home: Path) -> None:
    """The autouse fixture keeps these tests off the user's real ~/.shakenfist."""
    assert Path.home() == isolated_home


def test_the_official_clients_requests_trusts_the_ca_the_variable_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """~/.shakenfist has no CA setting; `requests`, which the client calls
    through, takes its CA bundle from this variable."""
    monkeypatch.setenv(CA_VARIABLE, "/var/lib/sfmesh/tls/ca.crt")
    settings = requests.Session().merge_environment_settings(
        "https://127.0.0.1:13000", {}, None, None, None
    )
    assert settings["verify"] == "/var/lib/sfmesh/tls/ca.crt"
