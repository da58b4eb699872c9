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
- `abandoned`: why a blob still `initial` will never be made (it is then
  marked `error`), or None while its maker may still make it. Only the
  maker knows whether it runs the copy, so it judges its own blobs; the
  other nodes judge only a maker that is gone: not alive and silent for
  the grace (its node record's `lastseen`), or without a record at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from sfmesh.v1 import artifact_pb2, records_pb2

UNNAMED_MAKER_GRACE = 86400.0
"""Seconds after which an `initial` blob naming no maker (reserved before
records named one) is taken for abandoned."""


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
    unknown blob: an upload's file lands before its record); so does the
    unlisted file of a blob in `error` (a snapshot adopted just before its
    agent died). A listed copy whose file is missing or of the wrong size
    goes at once. Pure."""
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
    if blob.state == artifact_pb2.BLOB_STATE_ERROR and not listed:
        if file_size is not None and now - file_changed >= grace:
            return "its blob could not be made"
        return None
    if listed and file_size is None:
        return "its file is missing"
    if listed and file_size != blob.size:
        return f"its file has {file_size} bytes, not {blob.size}"
    return None


def abandoned(
    record: records_pb2.BlobRecord,
    node: str,
    *,
    making: frozenset[str],
    alive: frozenset[str],
    lastseen: Mapping[str, float],
    now: float,
    grace: float,
) -> str | None:
    """Why blob `record`, still `initial`, will never be made, as judged by
    node `node`; None when it is not `initial` or its maker may still make
    it. `making` holds the blobs `node` is making now; `alive` the nodes
    whose records say `created`; `lastseen` every node record's last report
    time. A blob is given `grace` seconds from its reservation (the request
    to make it may still be on its way); its maker then judges it by
    whether it makes it, the others only once the maker has been gone for
    the grace. Pure."""
    if record.blob.state != artifact_pb2.BLOB_STATE_INITIAL:
        return None
    age = now - record.created_at
    maker = record.maker_node
    if not maker:
        if age >= UNNAMED_MAKER_GRACE:
            return f"it names no maker and has been initial for {age:.0f} s"
        return None
    if age < grace:
        return None
    if maker == node:
        if record.blob.uuid in making:
            return None
        return f"node {maker}, its maker, is not making it: its agent restarted or was never asked"
    if maker in alive:
        return None  # only the maker knows whether it is making it
    if maker not in lastseen:
        return f"node {maker}, its maker, has no node record"
    silent = now - lastseen[maker]
    if silent >= grace:
        return f"node {maker}, its maker, is gone: no report for {silent:.0f} s"
    return None
