"""The roles a host may run: the port each listens on by default, the
shared parts of the mesh it calls, and the keys its table in a host config
takes.

A role's settings are its service's own `Setting` rows (the `SETTINGS` of
`services/<name>/__main__.py`), read here rather than copied: a setting is
declared once, in its service, and a config key is its flag with
underscores (`--max-cpus` → `max_cpus`). The keys the launcher sets itself
(where the mesh is, the state folder, the listen address) are refused in a
role's table with where to set them instead.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.common.config import MESH_SETTINGS
from services.common.main import LOG_LEVEL
from services.common.settings import Setting
from services.common.tracing import OTLP_ENDPOINT
from services.common.transport import TLS_SETTINGS

ETCD_PEER_PORT = 13380
"""etcd's default peer port (its client port is the etcd role's `port`)."""


@dataclass(frozen=True)
class Role:
    """One kind of process a host may run."""

    name: str
    """Its name in `host.roles`, its config table and `--role`."""
    port: int
    """The port it listens on unless its `listen` says otherwise."""
    metrics_port: int = 0
    """The port it serves Prometheus metrics on unless its `metrics_listen`
    says otherwise; 0 for etcd, which serves `/metrics` on its client port."""
    module: str = ""
    """The Python module `python -m` runs; "" for etcd, which is not ours."""
    calls: tuple[str, ...] = ()
    """The `[mesh]` addresses it needs: the parts it calls (a node agent also
    needs the api's and the gateway's, to refuse image downloads from them)."""
    managed: Mapping[str, str] = field(default_factory=dict)
    """Its service's settings the launcher sets, and where a config sets them."""
    stateful: bool = True
    """Whether it keeps anything in the state folder (the gateway does not,
    so its unit runs with no state folder at all)."""

    @property
    def unit(self) -> str:
        """The systemd unit that runs it (deploy/systemd/)."""
        return f"sfmesh-{self.name.replace('_', '-')}.service"


ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role("etcd", 13379),
        Role("eventlog", 13012, 14012, "services.eventlog"),
        Role("scheduler", 13011, 14011, "services.scheduler", ("etcd", "eventlog")),
        Role("api", 13010, 14010, "services.api", ("etcd", "eventlog", "scheduler")),
        Role(
            "node_agent",
            13020,
            14020,
            "services.node_agent",
            ("etcd", "eventlog", "scheduler", "api", "gateway"),
            {"node_name": "host.name"},
        ),
        Role(
            "gateway",
            13000,
            14000,
            "services.api_gateway",
            ("api",),
            {"api_address": "mesh.api", "host": "gateway.listen", "port": "gateway.listen"},
            stateful=False,
        ),
    )
}
"""Every role, in the order a host starts them: each after what it calls
(the gateway last: it reads the api's descriptors when it starts)."""

ETCD_KEYS = ("listen", "peer", "data_dir", "initial_cluster", "cluster_state")
"""What the etcd table takes: its client and peer addresses, its data
folder, and the cluster it belongs to (`etcd_cluster.py`)."""
MESH_VALUES = ("floating_netblock",)
"""The `[mesh]` keys that are not addresses."""


def setting_key(setting: Setting) -> str:
    """The config key of a setting: its flag with underscores."""
    return setting.flag.lstrip("-").replace("-", "_")


MESH_FLAGS = {setting_key(setting): setting.flag for setting in MESH_SETTINGS}
"""The flags every gRPC service takes for where the mesh is (`--etcd`,
`--api`, …, `--state-dir`), by config key."""
TLS_KEYS = tuple(setting_key(setting) for setting in TLS_SETTINGS)
"""Every service's TLS settings (`tls_ca`, `tls_cert`, `tls_key`): the
launcher sets them from `tls.dir`."""


def role_settings(role: str) -> dict[str, Setting]:
    """The settings a role's table may set, by key (none for etcd)."""
    return dict(_role_settings(role))


@functools.cache
def _role_settings(role: str) -> tuple[tuple[str, Setting], ...]:
    spec = ROLES[role]
    if not spec.module:
        return ()
    rows: list[Setting] = list(importlib.import_module(f"{spec.module}.__main__").SETTINGS)
    if role != "gateway":  # its own rows give --otlp-endpoint; it has no --log-level
        rows += [LOG_LEVEL, OTLP_ENDPOINT]
    return tuple((setting_key(row), row) for row in rows if setting_key(row) not in spec.managed)


def managed_key(role: str, key: str) -> str | None:
    """Where a config sets `key` when the launcher sets it for `role`
    (`api.etcd` → `mesh.etcd`, `api.tls_cert` → `tls.dir`), or None when
    `key` is not the launcher's."""
    spec = ROLES[role]
    if key in spec.managed:
        return spec.managed[key]
    if spec.module and key in TLS_KEYS:
        return "tls.dir"
    if spec.module and role != "gateway" and key in MESH_FLAGS:
        return "host.state_dir" if key == "state_dir" else f"mesh.{key}"
    return None


def variable_keys(variable: str, roles: Iterable[str]) -> list[tuple[str, str]]:
    """The (table, key) pairs of a host config that set what the `SFMESH_*`
    environment variable `variable` sets, on a host running `roles`: the
    tables of every role whose service reads it, or `mesh` for the mesh's
    values. Addresses and the state folder are not among them: a host config
    says where they are."""
    pairs = [
        ("mesh", setting_key(row))
        for row in MESH_SETTINGS
        if row.env_name == variable and setting_key(row) in MESH_VALUES
    ]
    for role in roles:
        pairs += [(role, key) for key, row in _role_settings(role) if row.env_name == variable]
    return pairs
