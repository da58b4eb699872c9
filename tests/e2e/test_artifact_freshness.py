"""Freshness checks of an image URL already cached (reference §2.7 step 2),
through the whole mesh with the official `sf-client`: `artifact cache` of
a URL twice keeps one version when the served file is unchanged, and adds a
second when it changed in between; the node agent's events say why."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from guests.bootsector import boot_sector
from tests.e2e.test_official_client import sf_client
from tests.e2e.test_vms import wait_for

if TYPE_CHECKING:
    from tests.conftest import ImageServer

pytestmark = pytest.mark.slow
RUN = uuid.uuid4().hex[:6]
COMPLETE = "artifact fetch complete"


@pytest.fixture(scope="module", autouse=True)
def configured(mesh: Mesh, isolated_home: Path) -> Iterator[None]:
    """sf-client's ~/.shakenfist, for the system namespace."""
    assert write_client_config(
        isolated_home / ".shakenfist",
        apiurl=mesh.gateway_url,
        namespace="system",
        key=mesh.system_key,
    )
    yield


def artifact_of(url: str) -> dict[str, Any]:
    """The artifact `sf-client artifact list` shows for `url`."""
    found = [a for a in sf_client("artifact", "list") if a["source_url"] == url]
    assert len(found) == 1, found
    return dict(found[0])


def messages(ref: str) -> list[str]:
    """Its events' messages, oldest first, as `sf-client artifact events` shows them."""
    events = sorted(sf_client("artifact", "events", ref), key=lambda e: e["timestamp"])
    return [event["message"] for event in events]


def cached(url: str, completions: int) -> dict[str, Any]:
    """`sf-client artifact cache <url>`, then the artifact once its node
    agent has answered: `completions` fetch-complete events in all."""
    assert sf_client("artifact", "cache", url) == {}
    ref = artifact_of(url)["uuid"]
    wait_for(lambda: messages(ref).count(COMPLETE) >= completions, timeout=60)
    shown = sf_client("artifact", "show", ref)
    assert shown["state"] == "created", shown
    return dict(shown)


def test_caching_an_unchanged_url_again_keeps_one_version(image_server: ImageServer) -> None:
    name = f"fresh-same-{RUN}.raw"
    url = image_server.publish(name, boot_sector())
    first = cached(url, 1)
    assert (first["index"], sorted(first["blobs"])) == (1, ["1"])

    again = cached(url, 2)
    assert (again["uuid"], again["index"], again["blob_uuid"]) == (
        first["uuid"],
        1,
        first["blob_uuid"],
    )
    assert [v["uuid"] for v in sf_client("artifact", "versions", again["uuid"])] == [
        first["blob_uuid"]
    ]
    assert image_server.hits(name) == 2  # the download, then the check
    assert not [m for m in messages(again["uuid"]) if m.startswith("image requires fetch")]
    sf_client("artifact", "delete", again["uuid"])


def test_caching_a_changed_url_again_adds_a_version(image_server: ImageServer) -> None:
    name = f"fresh-changed-{RUN}.raw"
    url = image_server.publish(name, boot_sector())
    first = cached(url, 1)
    image_server.publish(name, boot_sector() + bytes(1024))  # longer, and modified now

    again = cached(url, 2)
    assert again["uuid"] == first["uuid"]
    assert (again["index"], sorted(again["blobs"])) == (2, ["1", "2"])
    assert again["blobs"]["1"]["uuid"] == first["blob_uuid"] != again["blob_uuid"]
    assert again["blobs"]["2"]["size"] == 512 + 1024
    versions = sf_client("artifact", "versions", again["uuid"])
    assert [v["uuid"] for v in versions] == [first["blob_uuid"], again["blob_uuid"]]
    assert "image requires fetch, Content-Length changed" in messages(again["uuid"])
    assert image_server.hits(name) == 2  # the check's answer was the download
    sf_client("artifact", "delete", again["uuid"])
