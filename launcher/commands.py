"""What the launcher runs for each role of a host config: its command line
and environment. Pure.

Settings reach a service as flags, never as `SFMESH_*` variables: flags win
over variables in every service, so the config file is the whole truth, and
`ps` (or `systemctl status`) shows each role's settings. The children's
environment is the launcher's without its `SFMESH_*` variables.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from launcher.addresses import Address
from launcher.config import HostConfig
from launcher.roles import MESH_FLAGS, ROLES
from launcher.tls import etcd_flags, scheme, service_flags
from services.common.settings import PREFIX

ETCD_LOG_LEVEL = "warn"


def command(config: HostConfig, role: str) -> list[str]:
    """The argv that runs `role` of this host."""
    if role == "etcd":
        return etcd_command(config)
    service = config.services[role]
    argv = [sys.executable, "-m", ROLES[role].module]
    if role == "gateway":
        listen = service.listen
        argv += [f"--api-address={_joined(config.mesh.api)}", f"--host={listen.host}"]
        argv.append(f"--port={listen.port}")
    else:
        argv += mesh_flags(config)
        argv.append(f"--listen={service.listen}")
        if role == "node_agent":
            argv.append(f"--node-name={config.name}")
    if service.metrics is not None:
        argv.append(f"--metrics-listen={service.metrics}")
    return [*argv, *service_flags(config.tls, role), *_flags(service.settings)]


def mesh_flags(config: HostConfig) -> list[str]:
    """Where the mesh is, as the flags every gRPC service takes; only what
    this host knows (a service that needs more was refused in the config)."""
    mesh = config.mesh
    values: dict[str, object] = {
        "state_dir": config.state_dir,
        "etcd": _joined(mesh.etcd),
        "api": _joined(mesh.api),
        "scheduler": mesh.scheduler,
        "eventlog": _joined(mesh.eventlog),
        "gateway": mesh.gateway,
        "floating_netblock": mesh.floating_netblock,
    }
    return [f"{MESH_FLAGS[key]}={value}" for key, value in values.items() if value is not None]


def etcd_command(config: HostConfig) -> list[str]:
    """This host's etcd member: of the cluster `[etcd]` lists, or alone;
    over https, asking clients and peers for a certificate, with `[tls]`."""
    member = config.etcd
    assert member is not None

    def url(address: Address) -> str:
        return f"{scheme(config.tls)}://{address}"

    peer = url(config.advertised(member.peer))
    cluster = ",".join(f"{name}={url(at)}" for name, at in member.cluster)
    return [
        "etcd",
        f"--name={config.name}",
        f"--data-dir={member.data_dir}",
        f"--listen-client-urls={url(member.listen)}",
        f"--advertise-client-urls={url(config.advertised(member.listen))}",
        f"--listen-peer-urls={url(member.peer)}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={cluster or f'{config.name}={peer}'}",
        f"--initial-cluster-state={member.cluster_state}",
        f"--log-level={ETCD_LOG_LEVEL}",
        *etcd_flags(config.tls),
    ]


def environment(inherited: Mapping[str, str]) -> dict[str, str]:
    """The children's environment: `inherited` without `SFMESH_*`, and
    Python's output unbuffered so log lines arrive as they are written."""
    env = {name: value for name, value in inherited.items() if not name.startswith(PREFIX)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ignored_variables(inherited: Mapping[str, str]) -> list[str]:
    """The `SFMESH_*` variables of `inherited` that no child will see."""
    return sorted(name for name in inherited if name.startswith(PREFIX))


def _joined(addresses: tuple[Address, ...]) -> str | None:
    """Addresses as one flag's value, comma-separated; None for none."""
    return ",".join(map(str, addresses)) if addresses else None


def _flags(settings: Mapping[str, str]) -> list[str]:
    return [f"{flag}={text}" for flag, text in settings.items()]
