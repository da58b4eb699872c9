"""What a node agent does about each blob, decided from records and the
facts of its own disk (pure; ``blob_care.py`` gathers and acts):

- `pulls`: whether this node copies a blob that is short of copies. Every
  node ranks the live nodes not holding the blob by rendezvous hashing of
  (blob, node) — the same order on every node, from the same records, with
  no etcd write and no lease — and the first `needed` of them pull. A
  ranked node that cannot pull (its disk is full, its agent hangs while its
  record still says `created`) would hold the count short for good, so the
  longer a node has seen the blob short, the further down the ranking the
  pull reaches: one more rank per `escalate` seconds. A blob may so end up
  with a copy more than the factor, which is a target, not a cap.
- `fault`: why this node's copy of a blob must go (its file removed, this
  node dropped from `locations`), or None to keep it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sfmesh.v1 import artifact_pb2, records_pb2


def rank(uuid: str, nodes: Iterable[str]) -> list[str]:
    """`nodes` in blob `uuid`'s rendezvous order: the same on every node,
    independent per blob, and stable when other nodes come or go. Pure."""

    def weight(node: str) -> bytes:
        return hashlib.sha256(f"{uuid}/{node}".encode()).digest()

    return sorted(set(nodes), key=lambda node: (weight(node), node))


def live_copies(blob: artifact_pb2.Blob, alive: frozenset[str]) -> frozenset[str]:
    """The nodes holding a whole copy that are alive. Pure."""
    return frozenset(blob.locations) & alive


def pulls(
    blob: artifact_pb2.Blob,
    node: str,
    alive: frozenset[str],
    factor: int,
    *,
    short_for: float = 0.0,
    escalate: float = 60.0,
) -> bool:
    """Whether node `node` should copy `blob`: it is `created`, has fewer
    live copies than `factor` but at least one to copy from, is not listed
    on `node`, and `node` is among the first of its ranking (widened by one
    rank per `escalate` seconds it has been `short_for`). Pure."""
    if blob.state != artifact_pb2.BLOB_STATE_CREATED or node in blob.locations:
        return False
    if node not in alive:
        return False
    holders = live_copies(blob, alive)
    needed = factor - len(holders)
    if not holders or needed <= 0:
        return False
    candidates = rank(blob.uuid, alive - frozenset(blob.locations))
    reach = needed + (int(short_for // escalate) if escalate > 0 else 0)
    return candidates.index(node) < reach


def fault(
    record: records_pb2.BlobRecord | None,
    node: str,
    file_size: int | None,
    file_changed: float,
    now: float,
    grace: float,
) -> str | None:
    """Why node `node`'s copy of a blob must go, or None. `record` is the
    blob's record (None: gone); `file_size` its file's size here (None: no
    file), last changed at `file_changed`. Files of deleted or unknown blobs
    go `grace` seconds after the deletion (or the file's last change, for an
    unknown blob: an upload's file lands before its record). A listed copy
    whose file is missing or of the wrong size goes at once. Pure."""
    if record is None:
        if file_size is not None and now - file_changed >= grace:
            return "its blob has no record"
        return None
    blob = record.blob
    listed = node in blob.locations
    if blob.state == artifact_pb2.BLOB_STATE_DELETED:
        since = record.deleted_at or file_changed
        if (file_size is not None or listed) and now - since >= grace:
            return "its blob is deleted"
        return None
    if listed and file_size is None:
        return "its file is missing"
    if listed and file_size != blob.size:
        return f"its file has {file_size} bytes, not {blob.size}"
    return None
