"""The OpenStack config drive: an ISO 9660 image labelled `config-2` (Rock
Ridge and Joliet) that a guest finds with `findfs LABEL=config-2`, holding
`openstack/latest/{meta_data.json,user_data,network_data.json}`.

Only `latest` is written: cloud-init reads the newest dated folder it knows
and falls back to `latest` when there is none, and the other readers we know
(glean, Ignition, our test guest) read `latest`, so dated copies would add
nothing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.node_agent.disks import (
    DiskError,
    absolute,
    discard,
    partial_path,
    publish,
    run_tool,
)

VOLUME_LABEL = "config-2"
"""The label guests look the drive up by."""

AVAILABILITY_ZONE = "sfmesh"
"""The availability zone every instance reports."""

_FOLDER = "openstack/latest"


@dataclass(frozen=True)
class ConfigDriveContent:
    """What an instance's config drive tells its guest."""

    uuid: str
    hostname: str
    """The instance name."""
    user_data: bytes | None
    """Already base64-decoded; None for none."""
    ssh_key: str | None
    network_data: Mapping[str, Any]
    """The OpenStack network_data.json document."""


def config_drive_files(content: ConfigDriveContent) -> dict[str, bytes]:
    """Relative path -> bytes of every file on the drive. Pure."""
    meta_data = {
        "uuid": content.uuid,
        "hostname": content.hostname,
        "name": content.hostname,
        "launch_index": 0,
        "availability_zone": AVAILABILITY_ZONE,
        "public_keys": {"sshkey": content.ssh_key} if content.ssh_key else {},
        "files": [],
        "devices": [],
    }
    files = {
        f"{_FOLDER}/meta_data.json": _compact_json(meta_data),
        f"{_FOLDER}/network_data.json": _compact_json(content.network_data),
    }
    if content.user_data is not None:
        files[f"{_FOLDER}/user_data"] = content.user_data
    return files


def _compact_json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(document), separators=(",", ":")).encode()


async def write_config_drive(content: ConfigDriveContent, target: Path) -> None:
    """Build the drive's ISO at `target`: the files go to a hidden tree and the
    ISO to a hidden partial name beside it, then the ISO is published as
    `disks.publish` does (same owner and mode). No-op when `target` exists;
    DiskError when it cannot be made."""
    if await asyncio.to_thread(target.exists):
        return
    tree = partial_path(target, "tree")
    partial = partial_path(target)
    try:
        await asyncio.to_thread(_write_tree, tree, config_drive_files(content))
        await run_tool(
            "genisoimage",
            "-quiet",
            "-input-charset",
            "utf-8",
            "-V",
            VOLUME_LABEL,
            "-r",
            "-J",
            "-o",
            absolute(partial),
            absolute(tree),
        )
        await publish(partial, target)
    except BaseException:
        discard(partial)
        raise
    finally:
        await asyncio.to_thread(shutil.rmtree, tree, True)


def _write_tree(tree: Path, files: Mapping[str, bytes]) -> None:
    """Write `files` under a fresh `tree` (a leftover of a crash is replaced);
    the folder holding `tree` must exist."""
    shutil.rmtree(tree, ignore_errors=True)
    try:
        tree.mkdir()
        for name, data in files.items():
            path = tree / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    except OSError as error:
        raise DiskError(f"cannot write the config drive's files: {error}") from error
