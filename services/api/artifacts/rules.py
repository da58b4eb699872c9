"""Pure rules of artifacts (reference §2.4, §2.5, §3, §11): who sees and who
manages an artifact, which one a name or a source URL picks, the checks of
version arguments, what a delete does, and which checksum of a blob is
known (§6, §9.2). No I/O.

- List visibility governs every read (§11 Q1): the caller is system, the
  artifact is shared, or its namespace trusts the caller (its own included).
- Ownership governs every write: the owning namespace trusts the caller
  (itself and system included); sharing does not help.
"""

from __future__ import annotations

from collections.abc import Sequence

from sfmesh.v1 import artifact_pb2, records_pb2

from services.api.visibility import SYSTEM
from services.common import artifact_versions, errors

State = artifact_pb2.ArtifactState
ACTIVE = frozenset(
    {State.ARTIFACT_STATE_INITIAL, State.ARTIFACT_STATE_CREATED, State.ARTIFACT_STATE_ERROR}
)
"""Listed, and found by name (§2.1)."""
MATCHABLE = frozenset({State.ARTIFACT_STATE_INITIAL, State.ARTIFACT_STATE_CREATED})
"""Found by source URL: an artifact in error is never reused (§2.1)."""
VIEW_VERSION = 6
ALGORITHMS = frozenset({"sha1", "sha256", "sha512", "xxh128"})
"""The checksum algorithms Shaken Fist knows (§9.2)."""
RECORDED = "sha512"
"""The one checksum a blob records."""


def trusts(owner: str, owner_record: records_pb2.NamespaceRecord | None, caller: str) -> bool:
    """Whether namespace `owner` (its record, None when gone) trusts `caller`:
    itself and system always; others when listed in its trusts."""
    if caller in (owner, SYSTEM):
        return True
    return owner_record is not None and caller in owner_record.trust


def visible(
    artifact: artifact_pb2.Artifact, owner_record: records_pb2.NamespaceRecord | None, caller: str
) -> bool:
    """List visibility (§2.5), which every read uses (§11 Q1)."""
    return artifact.shared or trusts(artifact.namespace, owner_record, caller)


def is_active(record: records_pb2.ArtifactRecord) -> bool:
    """Listed and found by name."""
    return record.artifact.state in ACTIVE


def pick_by_name(
    matches: Sequence[records_pb2.ArtifactRecord], name: str, caller: str
) -> records_pb2.ArtifactRecord:
    """The artifact a name picks among the active visible ones called so
    (§2.4): the caller's own first (§11 Q23); several → 400, none → 404."""
    own = [m for m in matches if m.artifact.namespace == caller]
    chosen = own or list(matches)
    if not chosen:
        raise errors.NotFound("artifact not found")
    if len(chosen) > 1:
        namespace = caller if own else chosen[0].artifact.namespace
        raise errors.InvalidArgument(
            f'multiple artifacts have the name "{name}" in namespace "{namespace}"',
            reason="AMBIGUOUS_NAME",
        )
    return chosen[0]


def pick_by_source(
    matches: Sequence[records_pb2.ArtifactRecord], source_url: str, target: str
) -> records_pb2.ArtifactRecord | None:
    """The artifact a find-or-create uses among the matchable ones of that
    type and source URL visible to `target` (§2.6): the single one in
    `target` first; None to create one; several elsewhere → 400 (§11 Q18)."""
    own = [m for m in matches if m.artifact.namespace == target]
    if len(own) == 1:
        return own[0]
    if not own and len(matches) == 1:
        return matches[0]
    if not matches:
        return None
    raise errors.InvalidArgument(
        f'several artifacts have the source URL "{source_url}"; name one by UUID',
        reason="AMBIGUOUS_SOURCE",
    )


def check_max_versions(value: int) -> int:
    """A max_versions given: an integer of at least 1 (§11 Q16)."""
    if value < 1:
        raise errors.InvalidArgument("max_versions must be an integer of at least 1")
    return value


def parse_version_id(text: str) -> int:
    """A version's index as the path gives it (§3.9)."""
    try:
        return int(text)
    except ValueError:
        raise errors.InvalidArgument("version index is not an integer") from None


def new_record(
    *,
    uuid: str,
    artifact_type: artifact_pb2.ArtifactType,
    source_url: str,
    namespace: str,
    name: str,
    now: float,
    shared: bool = False,
    max_versions: int = 0,
) -> records_pb2.ArtifactRecord:
    """A new artifact in state `initial`, with no versions."""
    artifact = artifact_pb2.Artifact(
        uuid=uuid,
        state=State.ARTIFACT_STATE_INITIAL,
        version=VIEW_VERSION,
        artifact_type=artifact_type,
        source_url=source_url,
        max_versions=max_versions or artifact_versions.DEFAULT_MAX_VERSIONS,
        namespace=namespace,
        shared=shared,
        name=name,
    )
    artifact.metadata.SetInParent()
    return records_pb2.ArtifactRecord(artifact=artifact, created_at=now)


def mark_deleted(record: records_pb2.ArtifactRecord, now: float) -> tuple[str, ...]:
    """Delete an artifact: its state, when, and no fetch pending; the blobs
    its versions let go of, one reference each (they stay listed)."""
    record.artifact.state = State.ARTIFACT_STATE_DELETED
    record.deleted_at = now
    record.fetch_node = ""
    return artifact_versions.release_all(record)


def check_shareable(artifact: artifact_pb2.Artifact) -> None:
    """Only system artifacts are shared (§3.10)."""
    if artifact.namespace != SYSTEM:
        raise errors.PermissionDenied(
            "only artifacts in the system namespace can be shared", reason="NOT_SYSTEM_ARTIFACT"
        )


def check_unshareable(artifact: artifact_pb2.Artifact) -> None:
    """Only a shared artifact is unshared (§3.10)."""
    if not artifact.shared:
        raise errors.PermissionDenied("artifact not shared", reason="NOT_SHARED")


def check_algorithm(algorithm: str) -> None:
    """A checksum algorithm Shaken Fist knows; 400 otherwise (§6.4)."""
    if algorithm not in ALGORITHMS:
        raise errors.InvalidArgument("unknown hash algorithm", reason="UNKNOWN_ALGORITHM")


def blob_checksum(blob: artifact_pb2.Blob, algorithm: str) -> str | None:
    """A blob's checksum by `algorithm`: its sha512, or None while it has
    none yet (Shaken Fist answers null for a checksum it has not computed).
    An unknown algorithm is 400 `unknown hash algorithm`; sha1, sha256 and
    xxh128, which sfmesh never computes, a 400 saying so, rather than a
    null that would never fill in."""
    check_algorithm(algorithm)
    if algorithm != RECORDED:
        raise errors.InvalidArgument(
            f"sfmesh records only the sha512 of a blob, not its {algorithm}",
            reason="CHECKSUM_NOT_RECORDED",
        )
    return blob.sha512 or None
