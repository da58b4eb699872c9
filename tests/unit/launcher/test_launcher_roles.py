"""launcher/roles.py: the role table agrees with the services it runs."""

from __future__ import annotations

import importlib

from launcher.roles import ROLES, managed_key, role_settings, setting_key, variable_keys
from services.common.config import MESH_SETTINGS


def test_roles_start_after_what_they_call() -> None:
    order = list(ROLES)
    for role in ROLES.values():
        for part in role.calls:
            if part in ROLES and part != "gateway":
                assert order.index(part) < order.index(role.name), (role.name, part)
    assert order[-1] == "gateway"


def test_what_the_launcher_sets_is_a_flag_of_the_service() -> None:
    """A renamed flag cannot leave the launcher setting a flag that is gone."""
    for role in ROLES.values():
        if not role.module:
            continue
        rows = importlib.import_module(f"{role.module}.__main__").SETTINGS
        flags = {setting_key(row) for row in rows}
        assert set(role.managed) <= flags, role.name
        assert not set(role.managed) & set(role_settings(role.name))


def test_every_grpc_service_takes_the_mesh_flags_from_the_launcher() -> None:
    for name in ("eventlog", "scheduler", "api", "node_agent"):
        for row in MESH_SETTINGS:
            key = setting_key(row)
            assert managed_key(name, key) in (f"mesh.{key}", "host.state_dir")
        assert "log_level" in role_settings(name)
    assert managed_key("gateway", "etcd") is None
    assert managed_key("api", "max_cpus") is None


def test_variables_land_in_every_role_that_reads_them() -> None:
    roles = list(ROLES)
    assert variable_keys("SFMESH_BLOB_DELETE_GRACE", roles) == [
        ("api", "blob_delete_grace"),
        ("node_agent", "blob_delete_grace"),
    ]
    assert variable_keys("SFMESH_MIN_FREE_DISK_GIB", roles) == [("scheduler", "min_free_disk_gib")]
    assert variable_keys("SFMESH_GATEWAY_MAX_BODY", roles) == [("gateway", "max_body")]
    assert variable_keys("SFMESH_FLOATING_NETBLOCK", roles) == [("mesh", "floating_netblock")]
    assert variable_keys("SFMESH_MIN_FREE_DISK_GIB", ["api"]) == []
    assert variable_keys("SFMESH_ETCD", roles) == []
    assert variable_keys("SFMESH_NODE_NAME", roles) == []


def test_units_are_named_for_their_roles() -> None:
    assert ROLES["node_agent"].unit == "sfmesh-node-agent.service"
    assert ROLES["etcd"].unit == "sfmesh-etcd.service"
