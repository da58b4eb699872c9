"""launcher/commands.py: each role's command line, accepted by the
service's own parser, and the children's environment."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import pytest

from launcher.__main__ import plan
from launcher.commands import command, environment, ignored_variables
from launcher.config import parse_config
from services.api_gateway.__main__ import parse_config as parse_gateway
from services.common import main as common_main

ALL = ["etcd", "eventlog", "scheduler", "api", "node_agent", "gateway"]
DOCUMENT: dict[str, Any] = {
    "host": {"name": "cp1", "roles": ALL, "address": "10.0.0.1", "state_dir": "/srv/sfmesh"},
    "mesh": {"floating_netblock": "10.254.9.0/24"},
    "etcd": {"listen": "0.0.0.0:13379"},
    "api": {"max_cpus": 16},
    "node_agent": {"image_shorthands": {"boot": "http://127.0.0.1:1/b.raw"}, "virt_type": "qemu"},
    "gateway": {"listen": "0.0.0.0:13000", "max_body": 2048},
}
CONFIG = parse_config(DOCUMENT, hostname="ignored")


def test_etcd_is_one_member_advertised_at_the_host_address() -> None:
    assert command(CONFIG, "etcd") == [
        "etcd",
        "--name=cp1",
        "--data-dir=/srv/sfmesh/etcd",
        "--listen-client-urls=http://0.0.0.0:13379",
        "--advertise-client-urls=http://10.0.0.1:13379",
        "--listen-peer-urls=http://10.0.0.1:13380",
        "--initial-advertise-peer-urls=http://10.0.0.1:13380",
        "--initial-cluster=cp1=http://10.0.0.1:13380",
        "--initial-cluster-state=new",
        "--log-level=warn",
    ]


def test_a_service_gets_the_mesh_its_listen_address_and_its_settings() -> None:
    assert command(CONFIG, "api") == [
        sys.executable,
        "-m",
        "services.api",
        "--state-dir=/srv/sfmesh",
        "--etcd=10.0.0.1:13379",
        "--api=10.0.0.1:13010",
        "--scheduler=10.0.0.1:13011",
        "--eventlog=10.0.0.1:13012",
        "--gateway=10.0.0.1:13000",
        "--floating-netblock=10.254.9.0/24",
        "--listen=10.0.0.1:13010",
        "--metrics-listen=10.0.0.1:14010",
        "--max-cpus=16",
    ]
    assert "--node-name=cp1" in command(CONFIG, "node_agent")
    assert command(CONFIG, "gateway")[3:] == [
        "--api-address=10.0.0.1:13010",
        "--host=0.0.0.0",
        "--port=13000",
        "--metrics-listen=10.0.0.1:14000",
        "--max-body=2048",
    ]


@pytest.mark.parametrize("role", ["eventlog", "scheduler", "api", "node_agent"])
def test_each_grpc_service_parses_its_command_line(
    role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flags the launcher writes are the ones the service reads."""
    argv = command(CONFIG, role)
    service = argv[2].removeprefix("services.")
    settings = importlib.import_module(f"{argv[2]}.__main__").SETTINGS
    monkeypatch.setattr(sys, "argv", [argv[2], *argv[3:]])
    monkeypatch.setattr(common_main, "configure_logging", lambda *_: None)
    monkeypatch.setattr(common_main, "serve_metrics", lambda _: None)
    args = common_main.parse_arguments(service, listen="127.0.0.1:1", settings=settings)
    assert args.listen == str(CONFIG.listen(role))
    assert args.metrics_listen == str(CONFIG.services[role].metrics)
    assert args.etcd == ("10.0.0.1:13379",)
    assert args.state_dir == "/srv/sfmesh"
    assert args.floating_netblock == "10.254.9.0/24"
    if role == "node_agent":
        assert args.node_name == "cp1"
        assert args.image_shorthands == {"boot": "http://127.0.0.1:1/b.raw"}
        assert args.virt_type == "qemu"


def test_the_gateway_parses_its_command_line() -> None:
    gateway = parse_gateway(command(CONFIG, "gateway")[3:])
    assert (gateway.api_address, gateway.host, gateway.port) == ("10.0.0.1:13010", "0.0.0.0", 13000)
    assert gateway.max_body == 2048
    assert gateway.metrics_listen == "10.0.0.1:14000"


def test_several_api_replicas_reach_the_gateway_and_the_node_agent() -> None:
    replicas = ["10.0.0.1:13010", "10.0.0.2:13010", "10.0.0.3:13010"]
    config = parse_config(
        {**DOCUMENT, "mesh": {**DOCUMENT["mesh"], "api": replicas}}, hostname="ignored"
    )
    gateway = parse_gateway(command(config, "gateway")[3:])
    assert gateway.api_address == ",".join(replicas)
    assert f"--api={','.join(replicas)}" in command(config, "node_agent")


def test_several_eventlog_replicas_reach_every_service_calling_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    replicas = ["10.0.0.1:13012", "10.0.0.2:13012", "10.0.0.3:13012"]
    config = parse_config(
        {**DOCUMENT, "mesh": {**DOCUMENT["mesh"], "eventlog": replicas}}, hostname="ignored"
    )
    for role in ("api", "scheduler", "node_agent"):
        assert f"--eventlog={','.join(replicas)}" in command(config, role), role
    monkeypatch.setattr(common_main, "configure_logging", lambda *_: None)
    monkeypatch.setattr(sys, "argv", ["scheduler", f"--eventlog={','.join(replicas)}"])
    assert common_main.parse_arguments("scheduler", listen="127.0.0.1:1").eventlog == ",".join(
        replicas
    )
    monkeypatch.setattr(sys, "argv", ["scheduler", "--eventlog=cp1:13012,cp2:13012"])
    with pytest.raises(SystemExit):
        common_main.parse_arguments("scheduler", listen="127.0.0.1:1")
    assert "--eventlog: 'cp1:13012': several eventlog replicas" in capsys.readouterr().err


def test_check_shows_where_each_service_serves_metrics() -> None:
    lines = plan(CONFIG, ["etcd", "api", "gateway"]).splitlines()
    assert [line for line in lines if "metrics:" in line] == [
        "  metrics: http://10.0.0.1:14010/metrics",
        "  metrics: http://10.0.0.1:14000/metrics",
    ]


def test_children_see_no_sfmesh_variables() -> None:
    inherited = {"PATH": "/usr/bin", "SFMESH_STATE_DIR": "/tmp", "SFMESH_VIRT_TYPE": "kvm"}
    assert environment(inherited) == {"PATH": "/usr/bin", "PYTHONUNBUFFERED": "1"}
    assert ignored_variables(inherited) == ["SFMESH_STATE_DIR", "SFMESH_VIRT_TYPE"]
