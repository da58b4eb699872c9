"""What a thin blob must name: exactly its parent's file, relative to the
blob store, in the parent's format, and no data file."""

from __future__ import annotations

from typing import Any

import pytest

from services.node_agent import blob_chain
from services.node_agent.images import ImageError

PARENT = "c3a9e2d4-77f0-4f5e-b0d6-1d2e3f405162"


def _info(**changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "format": "qcow2",
        "backing-filename": f"../c3/{PARENT}",
        "backing-filename-format": "raw",
        "format-specific": {"type": "qcow2", "data": {"compat": "1.1"}},
    }
    found.update(changes)
    return found


def test_the_backing_name_is_the_parent_s_file_beside_the_child_s_folder() -> None:
    assert blob_chain.backing_name(PARENT) == f"../c3/{PARENT}"
    for bad in ("", "a", "../x", ".hidden", "a/b"):
        with pytest.raises(ValueError):
            blob_chain.backing_name(bad)


def test_a_layer_naming_its_parent_passes() -> None:
    blob_chain.check_layer_info("s", _info(), PARENT, "raw")


@pytest.mark.parametrize(
    "changes",
    [
        {"backing-filename": f"/var/lib/sfmesh/blobs/c3/{PARENT}"},  # absolute: one node's path
        {"backing-filename": "../../../../etc/shadow"},
        {"backing-filename": f"../c3/{PARENT[:-1]}0"},  # another blob
        {"backing-filename-format": "qcow2"},
        {"format": "raw"},
        {"format-specific": {"type": "qcow2", "data": {"data-file": "/dev/sda"}}},
    ],
)
def test_anything_else_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ImageError):
        blob_chain.check_layer_info("s", _info(**changes), PARENT, "raw")


def test_a_layer_without_a_backing_file_is_no_thin_blob() -> None:
    found = _info()
    del found["backing-filename"], found["backing-filename-format"]
    with pytest.raises(ImageError, match="its backing file must be"):
        blob_chain.check_layer_info("s", found, PARENT, "raw")
