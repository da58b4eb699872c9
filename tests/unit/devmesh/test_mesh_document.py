"""devmesh/mesh.py: the all-in-one host config `make run` and the tests run,
and a hypervisor host's config beside it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from devmesh.mesh import Mesh, Ports
from launcher.addresses import Address
from launcher.config import parse_config
from launcher.toml_text import render

PORTS = Ports(
    gateway=1000, api=1010, scheduler=1011, eventlog=1012, node_agent=1020,
    etcd_client=1379, etcd_peer=1380, gateway_metrics=2000, api_metrics=2010,
    scheduler_metrics=2011, eventlog_metrics=2012, node_agent_metrics=2020,
)  # fmt: skip


def mesh(**settings: str) -> Mesh:
    return Mesh(state_dir=Path("/var/tmp/m"), ports=PORTS, node_name="n1", settings=settings)


def test_the_all_in_one_config_runs_every_role_on_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SFMESH_MIN_FREE_DISK_GIB", raising=False)
    document = mesh().document()
    config = parse_config(tomllib.loads(render(document)), hostname="other")
    assert config.name == "n1"
    assert config.roles == ("etcd", "eventlog", "scheduler", "api", "node_agent", "gateway")
    assert config.listen("gateway") == Address("127.0.0.1", 1000)
    assert config.etcd is not None and config.etcd.peer == Address("127.0.0.1", 1380)
    assert config.mesh.etcd == (Address("127.0.0.1", 1379),)
    assert config.services["scheduler"].settings["--min-free-disk-gib"] == "2"
    assert config.services["node_agent"].settings["--image-allowed-networks"] == "127.0.0.0/8"
    without = Mesh(state_dir=Path("/var/tmp/m"), ports=PORTS, node_agent=False).document()
    assert "node_agent" not in without and "node_agent" not in without["host"]["roles"]


def test_each_service_serves_metrics_on_its_port_and_the_mesh_says_where() -> None:
    ours = mesh()
    config = parse_config(tomllib.loads(render(ours.document())), hostname="other")
    assert config.metrics_urls() == {
        service: ours.metrics_url(service) for service in ours.services
    }
    assert ours.metrics_url("api") == "http://127.0.0.1:2010/metrics"
    assert ours.services == ["eventlog", "scheduler", "api", "node_agent", "gateway"]
    off = Mesh(state_dir=Path("/var/tmp/m"), ports=PORTS, metrics=False).document()
    assert parse_config(off, hostname="other").metrics_urls() == {}


def test_settings_win_over_the_environment_which_wins_over_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SFMESH_MIN_FREE_DISK_GIB", "5")
    monkeypatch.setenv("SFMESH_VIRT_TYPE", "qemu")
    monkeypatch.setenv("SFMESH_ETCD", "10.9.9.9:1")
    monkeypatch.setenv("SFMESH_NOT_A_SETTING", "x")
    document = mesh(SFMESH_VIRT_TYPE="kvm", SFMESH_FLOATING_NETBLOCK="10.254.9.0/24").document()
    assert document["scheduler"]["min_free_disk_gib"] == "5"
    assert document["node_agent"]["virt_type"] == "kvm"
    assert document["mesh"] == {"floating_netblock": "10.254.9.0/24"}
    assert document["etcd"]["listen"] == "127.0.0.1:1379"


def test_a_setting_no_role_reads_is_refused() -> None:
    with pytest.raises(ValueError, match="SFMESH_NODE_AGENT_TYPO: no role of this host reads it"):
        mesh(SFMESH_NODE_AGENT_TYPO="1").document()


def test_another_node_agent_is_a_hypervisor_host_of_this_mesh() -> None:
    ours = mesh(SFMESH_IMAGE_SHORTHANDS="debian:11=http://127.0.0.1:1/b.raw")
    document = ours.node_agent_document(
        "n2", Path("/var/tmp/n2"), "127.0.0.1:2020", {"SFMESH_UNDERLAY_ADDRESS": "10.252.0.1"}
    )
    config = parse_config(document, hostname="other")
    assert (config.name, config.roles, config.etcd) == ("n2", ("node_agent",), None)
    assert config.mesh.scheduler == Address("127.0.0.1", 1011)
    assert config.mesh.gateway == Address("127.0.0.1", 1000)
    assert config.services["node_agent"].settings == {
        "--image-allowed-networks": "127.0.0.0/8",
        "--image-shorthands": "debian:11=http://127.0.0.1:1/b.raw",
        "--underlay-address": "10.252.0.1",
    }
    assert config.listen("node_agent") == Address("127.0.0.1", 2020)
    assert config.services["node_agent"].metrics is None


def test_with_tls_the_config_names_the_certificates_and_rest_is_https() -> None:
    plain = mesh()
    assert plain.certificates is None and "tls" not in plain.document()
    assert plain.gateway_url == "http://127.0.0.1:1000"
    secure = Mesh(state_dir=Path("/var/tmp/m"), ports=PORTS, node_name="n1", tls=True)
    assert secure.document()["tls"] == {"dir": "/var/tmp/m/tls"}
    assert secure.certificates is not None
    assert secure.certificates.ca == Path("/var/tmp/m/tls/ca.crt")
    assert secure.gateway_url == "https://127.0.0.1:1000"
