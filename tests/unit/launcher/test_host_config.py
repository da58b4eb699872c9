"""launcher/config.py: a host config parses into what runs, or is refused
with every problem, each naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from launcher.addresses import Address
from launcher.config import ConfigError, load_config, parse_config

ALL = ["etcd", "eventlog", "scheduler", "api", "node_agent", "gateway"]
HYPERVISOR_MESH = {
    "etcd": ["10.0.0.1:13379"],
    "api": "10.0.0.1:13010",
    "scheduler": "10.0.0.1:13011",
    "eventlog": "10.0.0.1:13012",
    "gateway": "10.0.0.1:13000",
}


def problems(document: dict[str, Any]) -> list[str]:
    """The problems a document is refused with."""
    with pytest.raises(ConfigError) as raised:
        parse_config(document, hostname="here")
    return raised.value.problems


def test_an_all_in_one_host_needs_only_its_roles() -> None:
    config = parse_config({"host": {"roles": list(reversed(ALL))}}, hostname="here")
    assert config.name == "here"
    assert config.roles == tuple(ALL)
    assert config.state_dir == Path("/var/lib/sfmesh")
    assert config.listen("api") == Address("127.0.0.1", 13010)
    assert config.listen("gateway") == Address("127.0.0.1", 13000)
    assert config.etcd is not None and config.etcd.peer == Address("127.0.0.1", 13380)
    assert config.etcd.data_dir == Path("/var/lib/sfmesh/etcd")
    mesh = config.mesh
    assert mesh.etcd == (Address("127.0.0.1", 13379),)
    assert (mesh.api, mesh.scheduler, mesh.eventlog, mesh.gateway) == (
        (Address("127.0.0.1", 13010),),
        Address("127.0.0.1", 13011),
        (Address("127.0.0.1", 13012),),
        Address("127.0.0.1", 13000),
    )


def test_roles_listen_on_the_host_address_and_others_reach_wildcards_there() -> None:
    document = {
        "host": {
            "roles": ["etcd", "api", "scheduler", "eventlog", "gateway"],
            "address": "10.0.0.1",
        },
        "gateway": {"listen": "0.0.0.0:13000"},
        "etcd": {"listen": "0.0.0.0:13379"},
    }
    config = parse_config(document, hostname="cp1")
    assert config.listen("api") == Address("10.0.0.1", 13010)
    assert config.listen("gateway") == Address("0.0.0.0", 13000)
    assert config.mesh.gateway == Address("10.0.0.1", 13000)
    assert config.mesh.etcd == (Address("10.0.0.1", 13379),)


def test_settings_become_the_flags_of_the_roles_service() -> None:
    document = {
        "host": {"roles": ALL},
        "api": {"max_cpus": 16, "deleted_retention": 1.5, "log_level": "DEBUG"},
        "node_agent": {
            "image_shorthands": {"boot": "http://127.0.0.1:1/b.raw", "x": "http://h/x"},
            "image_allowed_networks": ["127.0.0.0/8", "10.0.0.0/8"],
            "virt_type": "qemu",
        },
        "gateway": {"max_body": 2048},
    }
    config = parse_config(document, hostname="here")
    assert config.services["api"].settings == {
        "--max-cpus": "16",
        "--deleted-retention": "1.5",
        "--log-level": "DEBUG",
    }
    assert config.services["node_agent"].settings == {
        "--image-shorthands": "boot=http://127.0.0.1:1/b.raw,x=http://h/x",
        "--image-allowed-networks": "127.0.0.0/8,10.0.0.0/8",
        "--virt-type": "qemu",
    }
    assert config.services["gateway"].settings == {"--max-body": "2048"}


def test_a_hypervisor_names_where_the_mesh_is() -> None:
    document = {
        "host": {"name": "hv1", "roles": ["node_agent"], "address": "10.0.1.11"},
        "mesh": HYPERVISOR_MESH,
        "node_agent": {"underlay_address": "10.0.1.11"},
    }
    config = parse_config(document, hostname="ignored")
    assert config.name == "hv1"
    assert config.etcd is None
    assert config.listen("node_agent") == Address("10.0.1.11", 13020)
    assert config.mesh.scheduler == Address("10.0.0.1", 11 + 13000)


def test_unknown_keys_are_named_with_a_guess() -> None:
    found = problems(
        {
            "host": {"roles": ["api", "scheduler", "eventlog", "etcd"], "colour": "blue"},
            "api": {"max_cpu": 4},
            "apii": {},
            "mesh": {"etc": ["127.0.0.1:1"]},
        }
    )
    assert found[0].startswith("apii: unknown key (did you mean api?)")
    assert any(p.startswith("host.colour: unknown key; known: name, roles") for p in found)
    assert any(p.startswith("api.max_cpu: unknown key (did you mean max_cpus?)") for p in found)
    assert any(p.startswith("mesh.etc: unknown key (did you mean etcd?)") for p in found)


def test_keys_the_launcher_sets_say_where_to_set_them() -> None:
    found = problems(
        {
            "host": {"roles": ALL},
            "api": {"etcd": "127.0.0.1:1", "state_dir": "/x"},
            "gateway": {"port": 14000, "api_address": "127.0.0.1:1"},
            "node_agent": {"node_name": "n"},
        }
    )
    assert found == [
        "api.etcd: the launcher sets it from mesh.etcd; set that instead",
        "api.state_dir: the launcher sets it from host.state_dir; set that instead",
        "node_agent.node_name: the launcher sets it from host.name; set that instead",
        "gateway.port: the launcher sets it from gateway.listen; set that instead",
        "gateway.api_address: the launcher sets it from mesh.api; set that instead",
    ]


@pytest.mark.parametrize(
    ("listen", "why"),
    [
        ("127.0.0.1", "is not host:port"),
        ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:70000", "the port must be a number from 1 to 65535"),
        ("::1:13010", "write an IPv6 host in brackets"),
        ("[10.0.0.1]:13010", "is not an IPv6 address"),
        ("bad_host!:13010", "is neither an IP address nor a host name"),
        ("300.1.1.1:13010", "is neither an IP address nor a host name"),
        (13010, "is not a host:port string"),
    ],
)
def test_bad_addresses_are_named(listen: object, why: str) -> None:
    (found,) = problems({"host": {"roles": ["eventlog"]}, "eventlog": {"listen": listen}})
    assert found.startswith("eventlog.listen: ") and why in found


def test_two_listeners_on_one_port_are_refused() -> None:
    found = problems(
        {
            "host": {"roles": ALL},
            "scheduler": {"listen": "127.0.0.1:13010"},
            "gateway": {"listen": "0.0.0.0:13020"},
            "etcd": {"peer": "127.0.0.1:13379"},
        }
    )
    assert found == [
        "etcd.listen and etcd.peer: both listen on port 13379",
        "scheduler.listen and api.listen: both listen on port 13010",
        "node_agent.listen and gateway.listen: both listen on port 13020",
    ]


def test_one_port_on_two_addresses_is_fine() -> None:
    document = {
        "host": {"roles": ["eventlog", "scheduler"]},
        "eventlog": {"listen": "127.0.0.1:14000"},
        "scheduler": {"listen": "127.0.0.2:14000"},
        "mesh": {"etcd": ["10.0.0.1:13379"]},
    }
    assert parse_config(document, hostname="here").listen("scheduler").port == 14000


def test_a_role_missing_where_the_mesh_is_is_refused() -> None:
    assert problems({"host": {"roles": ["node_agent"]}}) == [
        f"mesh.{part}: required: this host runs node_agent, which calls the {part}, and runs"
        f" no {part} itself"
        for part in ("etcd", "api", "scheduler", "eventlog", "gateway")
    ]
    assert problems({"host": {"roles": ["scheduler", "gateway"]}}) == [
        "mesh.etcd: required: this host runs scheduler, which calls the etcd, and runs no etcd"
        " itself",
        "mesh.api: required: this host runs gateway, which calls the api, and runs no api itself",
        "mesh.eventlog: required: this host runs scheduler, which calls the eventlog, and runs no"
        " eventlog itself",
    ]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ({}, "host.roles: required: a list of the roles this host runs (etcd, eventlog,"),
        ({"roles": []}, "host.roles: required"),
        ({"roles": ["apl"]}, "host.roles: 'apl' is not a role (did you mean api?)"),
        ({"roles": ["eventlog", "eventlog"]}, "host.roles: a role is listed twice"),
        ({"roles": ["eventlog"], "state_dir": "var/lib"}, "host.state_dir: 'var/lib' is not an"),
        ({"roles": ["eventlog"], "name": "a b"}, "host.name: 'a b' is not a name"),
        ({"roles": ["eventlog"], "address": "0.0.0.0"}, "host.address: '0.0.0.0' is not an"),
        ({"roles": ["eventlog"], "address": "no such!"}, "host.address: 'no such!' is neither"),
    ],
)
def test_the_host_table_is_checked(host: dict[str, Any], expected: str) -> None:
    assert problems({"host": host})[0].startswith(expected)


def test_a_role_table_without_its_role_is_refused() -> None:
    assert problems({"host": {"roles": ["eventlog"]}, "gateway": {"listen": "127.0.0.1:1"}}) == [
        "gateway: [gateway] is set but host.roles does not list gateway"
    ]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"virt_type": "xen"}, "node_agent.virt_type: 'xen' is not valid: not one of auto,"),
        ({"underlay_address": "10.0.0"}, "node_agent.underlay_address: '10.0.0' is not valid"),
        ({"image_max_gib": "many"}, "node_agent.image_max_gib: 'many' is not valid"),
        ({"image_shorthands": "nourl"}, "node_agent.image_shorthands: 'nourl' is not valid"),
        ({"advertise": "somewhere"}, "node_agent.advertise: 'somewhere' is not valid"),
        ({"log_level": "chatty"}, "node_agent.log_level: 'chatty' is not valid"),
        ({"underlay_mtu": True}, "node_agent.underlay_mtu: True: no setting takes true or false"),
        ({"underlay_mtu": [1, 2]}, "node_agent.underlay_mtu: [1, 2] is not a string, number"),
        ({"egress_bridge": "br0"}, "node_agent.egress_bridge: needs mesh.floating_netblock"),
    ],
)
def test_values_are_checked_by_the_services_own_parsers(
    table: dict[str, Any], expected: str
) -> None:
    document = {"host": {"roles": ["node_agent"]}, "mesh": HYPERVISOR_MESH, "node_agent": table}
    (found,) = problems(document)
    assert found.startswith(expected), found


@pytest.mark.parametrize(
    ("mesh", "expected"),
    [
        ({"etcd": "10.0.0.1:13379"}, "mesh.etcd: a list of host:port client endpoints"),
        ({"etcd": []}, "mesh.etcd: a list of host:port client endpoints"),
        ({"etcd": ["10.0.0.1"]}, "mesh.etcd: '10.0.0.1' is not host:port"),
        ({"etcd": ["10.0.0.1:1", "10.0.0.1:1"]}, "mesh.etcd: 10.0.0.1:1 is listed twice"),
        ({"api": []}, "mesh.api: host:port, or a list of the api replicas' IP:port"),
        ({"api": ["10.0.0.1"]}, "mesh.api: '10.0.0.1' is not host:port"),
        ({"api": ["10.0.0.1:1", "10.0.0.1:1"]}, "mesh.api: api address '10.0.0.1:1' is listed"),
        ({"api": ["cp1:1", "cp2:1"]}, "mesh.api: 'cp1:1': several api replicas are named by IP"),
        ({"eventlog": []}, "mesh.eventlog: host:port, or a list of the eventlog replicas'"),
        ({"eventlog": ["cp1:1", "cp2:1"]}, "mesh.eventlog: 'cp1:1': several eventlog replicas"),
        ({"floating_netblock": "10.0.0.0/30"}, "mesh.floating_netblock: --floating-netblock"),
        ({"floating_netblock": 10}, "mesh.floating_netblock: an IPv4 CIDR string"),
    ],
)
def test_the_mesh_table_is_checked(mesh: dict[str, Any], expected: str) -> None:
    (found,) = problems({"host": {"roles": ["eventlog"]}, "mesh": mesh})
    assert found.startswith(expected), found


@pytest.mark.parametrize(
    ("part", "role", "port"), [("api", "gateway", 13010), ("eventlog", "scheduler", 13012)]
)
def test_mesh_api_and_eventlog_are_one_address_or_a_list_of_replicas(
    part: str, role: str, port: int
) -> None:
    def listed(value: object) -> tuple[Address, ...]:
        document = {"host": {"roles": [role]}, "mesh": {part: value, "etcd": ["10.0.0.1:1"]}}
        found: tuple[Address, ...] = getattr(parse_config(document, hostname="here").mesh, part)
        return found

    assert listed(f"cp1:{port}") == (Address("cp1", port),)
    assert listed([f"10.0.0.1:{port}", f"10.0.0.2:{port}"]) == (
        Address("10.0.0.1", port),
        Address("10.0.0.2", port),
    )


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "host.toml"
    path.write_text('[host]\nroles = ["eventlog"\n')
    with pytest.raises(ConfigError, match=f"{path}: not TOML"):
        load_config(path, hostname="here")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml", hostname="here")
    path.write_text('[host]\nroles = ["eventlog"]\nstate_dir = "/srv/sfmesh"\n')
    assert load_config(path, hostname="here").state_dir == Path("/srv/sfmesh")


def test_every_problem_is_reported_once() -> None:
    found = problems(
        {
            "host": {"roles": ["eventlog", "scheduler"]},
            "eventlog": {"listen": "nowhere"},
            "scheduler": {"listen": "nowhere either"},
            "mesh": {"etcd": ["10.0.0.1:13379"]},
        }
    )
    assert [problem.split(":")[0] for problem in found] == ["eventlog.listen", "scheduler.listen"]


def test_each_role_serves_metrics_on_its_own_port_unless_told_otherwise() -> None:
    document = {
        "host": {"roles": ALL, "address": "10.0.0.1"},
        "gateway": {"listen": "0.0.0.0:13000"},
        "scheduler": {"metrics_listen": "127.0.0.1:9111"},
        "node_agent": {"metrics_listen": ""},
    }
    config = parse_config(document, hostname="cp1")
    assert config.services["api"].metrics == Address("10.0.0.1", 14010)
    assert config.services["eventlog"].metrics == Address("10.0.0.1", 14012)
    assert config.services["gateway"].metrics == Address("10.0.0.1", 14000)  # not 0.0.0.0
    assert config.services["scheduler"].metrics == Address("127.0.0.1", 9111)
    assert config.services["node_agent"].metrics is None
    assert config.metrics_urls() == {
        "eventlog": "http://10.0.0.1:14012/metrics",
        "scheduler": "http://127.0.0.1:9111/metrics",
        "api": "http://10.0.0.1:14010/metrics",
        "gateway": "http://10.0.0.1:14000/metrics",
    }


def test_a_metrics_port_is_checked_like_any_listener() -> None:
    found = problems(
        {
            "host": {"roles": ["eventlog", "scheduler"]},
            "eventlog": {"metrics_listen": "nowhere"},
            "scheduler": {"metrics_listen": "127.0.0.1:13011"},
            "mesh": {"etcd": ["10.0.0.1:13379"]},
        }
    )
    assert found[0].startswith("eventlog.metrics_listen: 'nowhere' is not host:port")
    assert found[1:] == ["scheduler.listen and scheduler.metrics_listen: both listen on port 13011"]
