"""The gateway's settings reach its config (services/api_gateway/__main__.py)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from services.api_gateway.__main__ import SETTINGS, parse_config
from services.common.transport import TLS_SETTINGS

TLS_FLAGS = [setting.flag for setting in TLS_SETTINGS]


def test_every_setting_reaches_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SFMESH_")]:
        monkeypatch.delenv(name)
    defaults = parse_config([])
    changed = {
        "--api-address": "10.0.0.9:1",
        "--host": "10.0.0.8",
        "--port": "8",
        "--max-body": "7",
        "--max-upload": "6",
        "--deadline": "5.5",
        "--head-timeout": "4.5",
        "--body-timeout": "3.5",
        "--max-connections": "2",
        "--novnc-dir": "/opt/novnc",
        "--otlp-endpoint": "10.0.0.7:4317",
    }
    assert sorted(changed) == sorted(setting.flag for setting in SETTINGS)
    config = parse_config([part for pair in changed.items() for part in pair])
    differing = {
        field.name
        for field in dataclasses.fields(config)
        if getattr(config, field.name) != getattr(defaults, field.name)
    }
    assert differing == {flag.removeprefix("--").replace("-", "_") for flag in changed}


def test_the_tls_files_make_it_serve_https(tmp_path: Path) -> None:
    files = {flag: tmp_path / flag.removeprefix("--tls-") for flag in TLS_FLAGS}
    for path in files.values():
        path.write_bytes(b"PEM")
    config = parse_config([part for flag, path in files.items() for part in (flag, str(path))])
    assert config.transport.tls is not None
    assert config.transport.tls.cert_path == files["--tls-cert"]


def test_some_tls_files_without_the_others_stop_it(tmp_path: Path) -> None:
    (tmp_path / "ca").write_bytes(b"PEM")
    with pytest.raises(SystemExit) as stopped:
        parse_config(["--tls-ca", str(tmp_path / "ca")])
    assert stopped.value.code == 2
