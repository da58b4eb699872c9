"""devmesh/cloud/layout.py: every host config the multi-host cloud writes
passes the launcher's checks and runs what the layout says, with TLS,
before any namespace is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from devmesh.cloud.layout import (
    ADDRESSES,
    CENTRE,
    CONTROL_PLANE,
    HOST_ROLES,
    endpoint,
    host_document,
)
from launcher.config import HostConfig, parse_config

MEMBERS = sorted(endpoint(host, "etcd") for host in CONTROL_PLANE)
APIS = [endpoint(host, "api") for host in CONTROL_PLANE]
EVENTLOGS = [endpoint(host, "eventlog") for host in CONTROL_PLANE]
FOLDER = Path("/var/tmp/multihost")
DATABASE = "postgresql://postgres@10.213.0.1:5432/sfmesh_events"


def config(host: str, cluster_state: str = "new") -> HostConfig:
    document = host_document(
        host,
        FOLDER / host,
        image_url="http://10.213.0.1:8000/bootsector.raw",
        database=DATABASE,
        cluster_state=cluster_state,
    )
    return parse_config(document, hostname="unused")


@pytest.mark.parametrize("host", HOST_ROLES)
def test_each_host_runs_its_roles_at_its_address_on_all_three_members(host: str) -> None:
    parsed = config(host)
    assert (parsed.name, parsed.address) == (host, ADDRESSES[host])
    assert parsed.roles == HOST_ROLES[host]
    assert sorted(map(str, parsed.mesh.etcd)) == MEMBERS
    assert parsed.state_dir == FOLDER / host / "state"
    assert parsed.tls is not None and parsed.tls.folder == FOLDER / host / "tls"


@pytest.mark.parametrize("host", HOST_ROLES)
def test_every_host_knows_every_api_replica(host: str) -> None:
    assert [str(api) for api in config(host).mesh.api] == APIS


@pytest.mark.parametrize("host", HOST_ROLES)
def test_every_host_knows_every_eventlog_replica_on_one_database(host: str) -> None:
    parsed = config(host)
    assert [str(eventlog) for eventlog in parsed.mesh.eventlog] == EVENTLOGS
    runs = "eventlog" in parsed.roles
    assert runs == (host in CONTROL_PLANE)
    if runs:
        assert parsed.services["eventlog"].settings == {"--database": DATABASE}


def test_a_lost_member_rejoins_the_running_cluster() -> None:
    member = config("cp3", "existing").etcd
    assert member is not None and member.cluster_state == "existing"
    assert [name for name, _ in member.cluster] == list(CONTROL_PLANE)


@pytest.mark.parametrize("host", HOST_ROLES)
def test_three_schedulers_and_one_fallback_address(host: str) -> None:
    runs = "scheduler" in config(host).roles
    assert runs == (host in CONTROL_PLANE)
    assert str(config(host).mesh.scheduler) == endpoint(CENTRE, "scheduler")
