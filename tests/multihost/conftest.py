"""The multi-host layer: a cloud of five hosts, each a network namespace
with an address of its own (`devmesh/cloud/`), started once per run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.cloud.cloud import Cloud, running_cloud
from devmesh.cloud.layout import CENTRE
from tests.e2e.test_vms import wait_for

CLEAN_TIMEOUT = 120.0
"""Seconds the hypervisors may take to remove the domains of a test's instances."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here starts the whole cloud: mark each `multihost`, and
    `slow` as the end-to-end tests are, and run them last, so the cloud
    (session-scoped: it starts once) idles beside no other test."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.multihost)
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.path.is_relative_to(here))


@pytest.fixture(scope="session")
def cloud() -> Iterator[Cloud]:
    """Five hosts on a LAN of their own (`running_cloud`), their output on
    stderr, which pytest shows for a failed test."""
    with running_cloud(sink=sys.stderr) as running:
        yield running


@pytest.fixture(scope="session")
def token(cloud: Cloud) -> str:
    """A system token, from cp1's gateway (every api replica accepts it)."""
    return cloud.login(CENTRE)


@pytest.fixture(autouse=True)
def nothing_left(cloud: Cloud, token: str) -> Iterator[None]:
    """After each test, delete every instance through cp1's gateway and wait
    until the hypervisors hold no domain."""
    yield
    with cloud.rest(CENTRE, token) as rest:
        for instance in rest.get("/instances").json():
            rest.delete(f"/instances/{instance['uuid']}")
    wait_for(lambda: not cloud.domains(), timeout=CLEAN_TIMEOUT)
