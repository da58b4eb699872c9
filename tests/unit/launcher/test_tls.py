"""launcher/tls.py: the `[tls]` table, the certificates it needs, and the
flags each role gets from it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from launcher.__main__ import plan
from launcher.ca import make_authority, write_host
from launcher.commands import command
from launcher.config import ConfigError, load_config, parse_config
from launcher.toml_text import render
from services.api_gateway.__main__ import parse_config as parse_gateway
from services.common import main as common_main

ALL = ["etcd", "eventlog", "scheduler", "api", "node_agent", "gateway"]
TLS = "/etc/sfmesh/tls"


def document(**tables: Any) -> dict[str, Any]:
    """cp1 running every role, with `[tls] dir` unless `tables` say otherwise."""
    return {
        "host": {"name": "cp1", "roles": ALL, "address": "10.0.0.1", "state_dir": "/srv/sfmesh"},
        "tls": {"dir": TLS},
        **tables,
    }


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(doc, hostname="here")
    return raised.value.problems


def test_the_tls_table_names_the_folder() -> None:
    config = parse_config(document(), hostname="here")
    assert config.tls is not None and config.tls.folder == Path(TLS)
    assert config.tls.cert("node_agent") == Path(f"{TLS}/node_agent.crt")
    plain = parse_config({"host": {"roles": ALL}}, hostname="here")
    assert plain.tls is None


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({}, "tls.dir: required: the folder `python -m launcher.ca issue --out` wrote"),
        ({"dir": "tls"}, "tls.dir: 'tls' is not an absolute path"),
        ({"dir": TLS, "ca": "/x"}, "tls.ca: unknown key; known: dir"),
        ("on", "tls: a table, [tls]"),
    ],
)
def test_the_tls_table_is_checked(table: object, expected: str) -> None:
    found = problems(document(tls=table))
    assert found[0] == expected, found


def test_tls_settings_in_a_roles_table_say_where_to_set_them() -> None:
    found = problems(document(api={"tls_cert": "/x"}, gateway={"tls_key": "/y"}))
    assert found == [
        "api.tls_cert: the launcher sets it from tls.dir; set that instead",
        "gateway.tls_key: the launcher sets it from tls.dir; set that instead",
    ]


def test_each_service_gets_its_own_certificate() -> None:
    config = parse_config(document(), hostname="here")
    for role in ALL[1:]:
        argv = command(config, role)
        assert argv[-3:] == [
            f"--tls-ca={TLS}/ca.crt",
            f"--tls-cert={TLS}/{role}.crt",
            f"--tls-key={TLS}/{role}.key",
        ], role
    assert command(config, "gateway")[:3] == [sys.executable, "-m", "services.api_gateway"]


def test_settings_follow_the_tls_flags() -> None:
    config = parse_config(document(api={"max_cpus": 16}), hostname="here")
    assert command(config, "api")[-4:] == [
        f"--tls-ca={TLS}/ca.crt",
        f"--tls-cert={TLS}/api.crt",
        f"--tls-key={TLS}/api.key",
        "--max-cpus=16",
    ]


def test_etcd_serves_clients_and_peers_over_https_asking_each_for_a_certificate() -> None:
    cluster = {"cp1": "10.0.0.1:13380", "cp2": "10.0.0.2:13380"}
    config = parse_config(
        document(
            etcd={"initial_cluster": cluster},
            mesh={"etcd": ["10.0.0.1:13379", "10.0.0.2:13379"]},
        ),
        hostname="here",
    )
    assert command(config, "etcd")[3:] == [
        "--listen-client-urls=https://10.0.0.1:13379",
        "--advertise-client-urls=https://10.0.0.1:13379",
        "--listen-peer-urls=https://10.0.0.1:13380",
        "--initial-advertise-peer-urls=https://10.0.0.1:13380",
        "--initial-cluster=cp1=https://10.0.0.1:13380,cp2=https://10.0.0.2:13380",
        "--initial-cluster-state=new",
        "--log-level=warn",
        f"--cert-file={TLS}/etcd.crt",
        f"--key-file={TLS}/etcd.key",
        f"--trusted-ca-file={TLS}/ca.crt",
        "--client-cert-auth",
        f"--peer-cert-file={TLS}/etcd.crt",
        f"--peer-key-file={TLS}/etcd.key",
        f"--peer-trusted-ca-file={TLS}/ca.crt",
        "--peer-client-cert-auth",
    ]


def test_without_tls_nothing_changes() -> None:
    config = parse_config({"host": {"roles": ALL}}, hostname="here")
    assert not any("tls" in arg for role in ALL for arg in command(config, role))
    assert all("https" not in arg for arg in command(config, "etcd"))


def test_load_config_names_every_missing_certificate(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    folder.mkdir()
    for name in ("ca.crt", "api.crt", "api.key", "eventlog.crt"):
        (folder / name).write_text("pem")
    path = tmp_path / "host.toml"
    doc: dict[str, dict[str, Any]] = {
        "host": {"name": "cp1", "roles": ["eventlog", "api"], "address": "10.0.0.1"},
        "mesh": {"etcd": ["10.0.0.9:13379"], "scheduler": "10.0.0.9:13011"},
        "tls": {"dir": str(folder)},
    }
    path.write_text(render(doc))
    with pytest.raises(ConfigError) as raised:
        load_config(path, hostname="here")
    issue = (
        "python -m launcher.ca issue --ca-dir CA --host cp1 --address 10.0.0.1"
        f" --roles eventlog,api --out {folder}"
    )
    assert raised.value.problems == [
        f"tls.dir: {folder}/eventlog.key is missing (`{issue}` writes it)"
    ]
    (folder / "eventlog.key").write_text("pem")
    assert load_config(path, hostname="here").tls is not None


def test_check_says_whether_tls_is_on() -> None:
    tls = plan(parse_config(document(), hostname="here"), ["api"])
    assert f"tls: mutual, with the certificates in {TLS}" in tls.splitlines()
    plain = plan(parse_config({"host": {"roles": ALL}}, hostname="here"), ["api"])
    assert "tls: none (plaintext gRPC and HTTP; [tls] dir turns it on)" in plain.splitlines()


@pytest.mark.parametrize("role", ["eventlog", "scheduler", "api", "node_agent"])
def test_each_grpc_service_reads_its_tls_flags(role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = command(parse_config(document(), hostname="here"), role)
    settings = importlib.import_module(f"{argv[2]}.__main__").SETTINGS
    monkeypatch.setattr(sys, "argv", [argv[2], *argv[3:]])
    monkeypatch.setattr(common_main, "configure_logging", lambda *_: None)
    monkeypatch.setattr(common_main, "serve_metrics", lambda _: None)
    args = common_main.parse_arguments(role, listen="127.0.0.1:1", settings=settings)
    assert (args.tls_ca, args.tls_cert, args.tls_key) == (
        f"{TLS}/ca.crt",
        f"{TLS}/{role}.crt",
        f"{TLS}/{role}.key",
    )


def test_the_gateway_serves_https_with_its_certificate(tmp_path: Path) -> None:
    write_host(make_authority("test CA"), tmp_path, "cp1", ["gateway"], ())
    config = parse_config(document(tls={"dir": str(tmp_path)}), hostname="here")
    gateway = parse_gateway(command(config, "gateway")[3:])
    assert gateway.transport.tls is not None
    assert gateway.transport.tls.cert == (tmp_path / "gateway.crt").read_bytes()
