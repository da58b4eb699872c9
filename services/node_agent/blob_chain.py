"""Thin blobs: a thin snapshot is a qcow2 holding only a disk's own layer,
whose backing file is the blob the disk was built from (its `depends_on`).

The backing file is named relative to the child's own folder in the blob
store, `../<parent uuid[:2]>/<parent uuid>`: the store lays every node out
alike (`<blobs>/<uuid[:2]>/<uuid>`), so the same bytes (and sha512) work on
every node once the parent is there too, and a copy between nodes needs no
rewrite. qemu and libvirt resolve a relative backing name against the
image's folder.

A qcow2 blob that names another file is refused (``images.check_self_contained``:
qemu would open a host file for the guest), except that a blob recorded
with a parent must name exactly that parent's file, in that parent's
format, and nothing else (no external data file). Chains are at most
`MAX_DEPTH` deep.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.node_agent.images import ImageError, check_self_contained

MAX_DEPTH = 16
"""Blobs a chain may hold above its self-contained base."""


def backing_name(parent_uuid: str) -> str:
    """The backing file a thin blob names: its parent's file, relative to
    the child's folder in the blob store. Pure."""
    if len(parent_uuid) < 2 or "/" in parent_uuid or parent_uuid.startswith("."):
        raise ValueError(f"not a blob uuid: {parent_uuid!r}")
    return f"../{parent_uuid[:2]}/{parent_uuid}"


def check_layer_info(subject: str, info: Mapping[str, Any], parent: str, parent_fmt: str) -> None:
    """Refuse a thin blob (its `qemu-img info` JSON) unless it is a qcow2
    naming exactly `parent`'s file, in `parent_fmt`, and no data file. Pure."""
    if info.get("format") != "qcow2":
        raise ImageError(f"{subject}: a thin blob must be qcow2, not {info.get('format')}")
    data_file = info.get("format-specific", {}).get("data", {}).get("data-file")
    if data_file:
        raise ImageError(f"{subject}: qcow2 images that refer to other files are refused")
    wanted = backing_name(parent)
    named = info.get("backing-filename")
    if named != wanted or info.get("backing-filename-format") != parent_fmt:
        raise ImageError(
            f"{subject}: its backing file must be {wanted} ({parent_fmt}), "
            f"not {named} ({info.get('backing-filename-format')})"
        )


def image_info(path: Path, fmt: str = "qcow2") -> dict[str, Any]:
    """`qemu-img info` of an image, without opening its backing file
    (blocking); ImageError when qemu-img cannot read it."""
    argv = ["qemu-img", "info", "--output=json", "-f", fmt, "-U", str(path)]
    done = subprocess.run(argv, capture_output=True, check=False, timeout=60)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()
        raise ImageError(f"not a valid {fmt} image: {reason}")
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def check_layer(subject: str, path: Path, parent: str | None, parent_fmt: str = "") -> None:
    """A qcow2 blob file is what its record says: self-contained without a
    parent, else a layer over exactly `parent` (blocking). Raises ImageError."""
    if parent is None:
        check_self_contained(subject, path)
        return
    try:
        info = image_info(path)
    except ImageError as exc:
        raise ImageError(f"{subject}: {exc}") from exc
    check_layer_info(subject, info, parent, parent_fmt)
