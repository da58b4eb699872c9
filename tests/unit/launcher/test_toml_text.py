"""launcher/toml_text.py: what it writes, tomllib reads back the same."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from launcher.toml_text import render


def test_a_document_round_trips() -> None:
    document: dict[str, dict[str, Any]] = {
        "host": {"name": "cp1", "roles": ["etcd", "api"], "state_dir": "/var/lib/sfmesh"},
        "api": {"max_cpus": 16, "deleted_retention": 0.5, "odd": 'quote " back \\ tab \t é'},
        "node_agent": {"image_shorthands": {"debian:11": "http://h/x", "b": "http://h/b"}},
        "empty": {},
    }
    text = render(document, header="line one\nline two")
    assert text.startswith("# line one\n# line two\n\n[host]\n")
    assert tomllib.loads(text) == document


def test_values_without_a_toml_form_are_refused() -> None:
    with pytest.raises(TypeError):
        render({"host": {"when": object()}})
