"""deploy/systemd/: a unit per role, each running `python -m launcher --role`
for its role, all passing `systemd-analyze verify`.

verify works offline (PID 1 here is not systemd), with one condition: it
checks that ExecStart's program exists, and the units name the installed
path `/opt/sfmesh/.venv/bin/python`. The test copies the units, replaces
that install prefix (and nothing else) by a folder whose `.venv` is this
interpreter's venv, and verifies the copies; a second test runs each unit's
command line, so rewritten, from this checkout (the units' working
directory is the checkout) with `--check` against a host config.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.roles import ROLES
from launcher.toml_text import render

REPO = Path(__file__).resolve().parents[3]
UNITS = REPO / "deploy" / "systemd"
PREFIX = "/opt/sfmesh"
CONFIG = "/etc/sfmesh/host.toml"


def installed_copies(folder: Path) -> list[Path]:
    """The units, with the install prefix made a folder holding this venv."""
    prefix = folder / "sfmesh"
    prefix.mkdir(parents=True)
    (prefix / ".venv").symlink_to(sys.prefix)
    copies = []
    for unit in sorted(UNITS.iterdir()):
        copy = folder / unit.name
        copy.write_text(unit.read_text().replace(PREFIX, str(prefix)))
        copies.append(copy)
    return copies


def exec_start(unit: Path) -> list[str]:
    (line,) = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def test_there_is_a_unit_per_role_and_a_target() -> None:
    names = sorted(path.name for path in UNITS.iterdir())
    assert names == sorted([*(role.unit for role in ROLES.values()), "sfmesh.target"])
    for role in ROLES.values():
        unit = UNITS / role.unit
        assert exec_start(unit) == [
            f"{PREFIX}/.venv/bin/python", "-m", "launcher", "--config", CONFIG, "--role", role.name
        ]  # fmt: skip
        text = unit.read_text()
        assert f"WorkingDirectory={PREFIX}" in text
        assert "Restart=on-failure" in text
        assert "PartOf=sfmesh.target" in text and "WantedBy=sfmesh.target" in text
    assert (
        "After=network-online.target libvirtd.service"
        in (UNITS / "sfmesh-node-agent.service").read_text()
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    copies = installed_copies(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, copies)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_each_units_command_line_is_one_the_launcher_takes(tmp_path: Path) -> None:
    config = tmp_path / "host.toml"
    config.write_text(render({"host": {"roles": list(ROLES), "state_dir": str(tmp_path / "s")}}))
    for copy in installed_copies(tmp_path / "units"):
        if copy.suffix != ".service":
            continue
        argv = [str(config) if word == CONFIG else word for word in exec_start(copy)]
        done = subprocess.run(
            [*argv, "--check"], capture_output=True, text=True, timeout=60, cwd=REPO
        )
        assert done.returncode == 0, done.stderr
        role = argv[-1]
        assert f"{role} ({copy.name}):" in done.stdout
