"""deploy/hosts/ and docs/deploy.md: every host config the deploy page
shows is a file of deploy/hosts/, word for word, and runs once the host's
certificates are where its `[tls] dir` says.

The configs name `/etc/sfmesh/tls`, which this machine lacks: a config is
loaded as the page says to check it, first without its certificates (refused,
naming each), then with the ones `launcher.ca issue` makes for the host's
roles and address in a folder of its own.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from launcher.ca import make_authority, write_host
from launcher.config import ConfigError, load_config
from launcher.toml_text import render

REPO = Path(__file__).resolve().parents[2]
HOSTS = sorted((REPO / "deploy" / "hosts").glob("*.toml"))
TLS = Path("/etc/sfmesh/tls")


def with_certificates(path: Path, folder: Path) -> Path:
    """The config at `path`, its `[tls] dir` made `folder/tls` holding the
    certificates its roles need, issued as the deploy page says."""
    document = tomllib.loads(path.read_text())
    host = document["host"]
    write_host(
        make_authority("test CA"), folder / "tls", host["name"], host["roles"], [host["address"]]
    )
    document["tls"]["dir"] = str(folder / "tls")
    copy = folder / path.name
    copy.write_text(render(document))
    return copy


@pytest.mark.parametrize("path", HOSTS, ids=lambda path: path.stem)
def test_each_host_config_runs_with_its_certificates(path: Path, tmp_path: Path) -> None:
    if TLS.exists():
        pytest.skip(f"{TLS} exists here")
    with pytest.raises(ConfigError) as raised:
        load_config(path, hostname="unused")
    assert all(problem.startswith(f"tls.dir: {TLS}/") for problem in raised.value.problems)
    assert f"tls.dir: {TLS}/ca.crt is missing" in raised.value.problems[0]
    config = load_config(with_certificates(path, tmp_path), hostname="unused")
    assert config.name == path.stem
    assert config.address.startswith("10.0.")
    assert len(raised.value.problems) == 1 + 2 * len(config.roles)


def test_the_deploy_page_shows_the_files() -> None:
    page = (REPO / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", page, flags=re.S)
    texts = {path.read_text() for path in HOSTS}
    assert all(block in texts for block in blocks)
    assert len(blocks) == len(HOSTS) - 1  # cp3 is cp2 with its own name and address
    cp2, cp3 = ((REPO / "deploy" / "hosts" / f"{name}.toml").read_text() for name in ("cp2", "cp3"))
    shared = ("initial_cluster", "etcd = ", "api = ", "eventlog = ", "# The same on every member")
    assert cp3.splitlines() == [
        line
        if line.startswith(shared)
        else line.replace("cp2", "cp3").replace("10.0.0.2", "10.0.0.3")
        for line in cp2.splitlines()
    ]


def test_the_control_plane_hosts_make_one_etcd_cluster(tmp_path: Path) -> None:
    configs = [
        load_config(
            with_certificates(REPO / "deploy" / "hosts" / f"cp{n}.toml", tmp_path / f"{n}"),
            hostname="",
        )
        for n in (1, 2, 3)
    ]
    members = {config.etcd.cluster for config in configs if config.etcd is not None}
    assert len(members) == 1 and len(next(iter(members))) == 3
    # Three scheduler replicas (one leads); every host falls back to cp1's.
    assert all("scheduler" in config.roles for config in configs)
    assert len({config.mesh.scheduler for config in configs}) == 1
    # Three eventlog replicas on one database, each known to every host.
    assert all("eventlog" in config.roles for config in configs)
    assert len({config.services["eventlog"].settings["--database"] for config in configs}) == 1
    hv1 = load_config(
        with_certificates(REPO / "deploy" / "hosts" / "hv1.toml", tmp_path / "hv1"), hostname=""
    )
    assert all(config.mesh.etcd == hv1.mesh.etcd for config in configs)
    assert len(hv1.mesh.etcd) == 3
    assert all(config.mesh.eventlog == hv1.mesh.eventlog for config in configs)
    assert len(hv1.mesh.eventlog) == 3
