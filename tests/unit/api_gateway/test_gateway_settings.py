"""The gateway's settings reach its config (services/api_gateway/__main__.py)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from services.api_gateway.__main__ import SETTINGS, parse_config


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
    }
    assert sorted(changed) == sorted(setting.flag for setting in SETTINGS)
    config = parse_config([part for pair in changed.items() for part in pair])
    differing = {
        field.name
        for field in dataclasses.fields(config)
        if getattr(config, field.name) != getattr(defaults, field.name)
    }
    assert differing == {flag.removeprefix("--").replace("-", "_") for flag in changed}
