"""deploy/hosts/ and docs/deploy.md: every host config the deploy page
shows is a file of deploy/hosts/, word for word, and parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from launcher.config import load_config

REPO = Path(__file__).resolve().parents[2]
HOSTS = sorted((REPO / "deploy" / "hosts").glob("*.toml"))


@pytest.mark.parametrize("path", HOSTS, ids=lambda path: path.stem)
def test_each_host_config_parses(path: Path) -> None:
    config = load_config(path, hostname="unused")
    assert config.name == path.stem
    assert config.address.startswith("10.0.")


def test_the_deploy_page_shows_the_files() -> None:
    page = (REPO / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", page, flags=re.S)
    texts = {path.read_text() for path in HOSTS}
    assert all(block in texts for block in blocks)
    assert len(blocks) == len(HOSTS) - 1  # cp3 is cp2 with its own name and address
    cp2, cp3 = ((REPO / "deploy" / "hosts" / f"{name}.toml").read_text() for name in ("cp2", "cp3"))
    shared = ("initial_cluster", "etcd = ", "# The same on every member")
    assert cp3.splitlines() == [
        line
        if line.startswith(shared)
        else line.replace("cp2", "cp3").replace("10.0.0.2", "10.0.0.3")
        for line in cp2.splitlines()
    ]


def test_the_control_plane_hosts_make_one_etcd_cluster() -> None:
    configs = [
        load_config(REPO / "deploy" / "hosts" / f"cp{n}.toml", hostname="") for n in (1, 2, 3)
    ]
    members = {config.etcd.cluster for config in configs if config.etcd is not None}
    assert len(members) == 1 and len(next(iter(members))) == 3
    hv1 = load_config(REPO / "deploy" / "hosts" / "hv1.toml", hostname="")
    assert all(config.mesh.etcd == hv1.mesh.etcd for config in configs)
    assert len(hv1.mesh.etcd) == 3
