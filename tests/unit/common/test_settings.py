"""Settings declared once: flag over variable over default."""

from __future__ import annotations

import argparse

import pytest

from services.common.settings import Setting, add_settings, environment_value, parse_bool

PORT = Setting("--port", 13000, "the port", int, "GATEWAY_PORT")
MODE = Setting("--virt-type", "auto", "the mode", choices=("auto", "kvm"))


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_settings(parser, (PORT, MODE))
    return parser.parse_args(argv)


def test_the_variable_is_named_after_the_flag_unless_given() -> None:
    assert MODE.env_name == "SFMESH_VIRT_TYPE"
    assert PORT.env_name == "SFMESH_GATEWAY_PORT"


def test_flag_over_variable_over_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _parse([]).port == 13000
    monkeypatch.setenv("SFMESH_GATEWAY_PORT", "14000")
    assert _parse([]).port == 14000
    assert _parse(["--port", "15000"]).port == 15000


def test_a_bad_variable_stops_with_its_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SFMESH_GATEWAY_PORT", "many")
    with pytest.raises(SystemExit):
        _parse([])
    assert "SFMESH_GATEWAY_PORT='many'" in capsys.readouterr().err
    monkeypatch.delenv("SFMESH_GATEWAY_PORT")
    monkeypatch.setenv("SFMESH_VIRT_TYPE", "xen")
    with pytest.raises(ValueError, match="not one of auto, kvm"):
        environment_value(MODE)


def test_help_names_the_variable_and_the_default() -> None:
    parser = argparse.ArgumentParser()
    add_settings(parser, (PORT, Setting("--bridge", "", "a bridge")))
    text = parser.format_help()
    assert "SFMESH_GATEWAY_PORT; default 13000" in text
    assert "SFMESH_BRIDGE; default none" in text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *(("true", True), ("Yes", True), ("1", True), ("on", True)),
        *(("false", False), ("NO", False), ("0", False), (" off ", False)),
    ],
)
def test_booleans_parse(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_a_non_boolean_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_bool("maybe")
