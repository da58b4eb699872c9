"""Pure rules of artifacts: visibility, ownership, picks, version arguments,
blob checksums."""

from __future__ import annotations

import pytest
from sfmesh.v1 import artifact_pb2, records_pb2

from services.api.artifacts import rules
from services.common import errors


def _record(
    namespace: str = "a", name: str = "x", *, shared: bool = False
) -> records_pb2.ArtifactRecord:
    return rules.new_record(
        uuid=f"{namespace}-{name}",
        artifact_type=artifact_pb2.ARTIFACT_TYPE_IMAGE,
        source_url=f"https://example.com/{name}",
        namespace=namespace,
        name=name,
        now=1.0,
        shared=shared,
    )


def test_trust_is_own_system_or_listed() -> None:
    owner = records_pb2.NamespaceRecord(name="a", trust=["b"])
    assert rules.trusts("a", owner, "a")
    assert rules.trusts("a", owner, "system")
    assert rules.trusts("a", owner, "b")
    assert not rules.trusts("a", owner, "c")
    assert not rules.trusts("a", None, "b")  # a namespace gone trusts no one else


def test_reads_use_list_visibility_shared_or_trusted() -> None:
    shared = _record("system", shared=True).artifact
    private = _record("system").artifact
    assert rules.visible(shared, None, "c")
    assert not rules.visible(private, None, "c")
    assert rules.visible(private, None, "system")


def test_a_name_prefers_the_callers_namespace() -> None:
    mine, theirs = _record("a"), _record("system", shared=True)
    assert rules.pick_by_name([theirs, mine], "x", "a") is mine
    assert rules.pick_by_name([theirs], "x", "a") is theirs
    with pytest.raises(errors.NotFound, match="artifact not found"):
        rules.pick_by_name([], "x", "a")
    with pytest.raises(errors.InvalidArgument, match='name "x" in namespace "a"'):
        rules.pick_by_name([mine, _record("a")], "x", "a")


def test_a_source_prefers_the_target_and_creates_when_none() -> None:
    mine, shared = _record("a"), _record("system", shared=True)
    assert rules.pick_by_source([shared, mine], "u", "a") is mine
    assert rules.pick_by_source([shared], "u", "a") is shared
    assert rules.pick_by_source([], "u", "a") is None
    with pytest.raises(errors.InvalidArgument):  # never a 500 (Q18)
        rules.pick_by_source([shared, _record("b")], "u", "a")


@pytest.mark.parametrize("value", [0, -1])
def test_max_versions_is_at_least_one(value: int) -> None:
    with pytest.raises(errors.InvalidArgument, match="at least 1"):
        rules.check_max_versions(value)
    assert rules.check_max_versions(2) == 2


def test_version_ids_are_integers() -> None:
    assert rules.parse_version_id("7") == 7
    with pytest.raises(errors.InvalidArgument, match="version index is not an integer"):
        rules.parse_version_id("x")


def test_a_delete_lets_go_of_every_version_and_keeps_them_listed() -> None:
    record = _record()
    record.versions.add(index=1, blob_uuid="b1")
    record.versions.add(index=2, blob_uuid="b2")
    record.fetch_node = "n1"
    assert rules.mark_deleted(record, 5.0) == ("b1", "b2")
    assert record.artifact.state == artifact_pb2.ARTIFACT_STATE_DELETED
    assert record.deleted_at == 5.0 and not record.fetch_node
    assert len(record.versions) == 2


def test_only_system_artifacts_are_shared_and_only_shared_unshared() -> None:
    with pytest.raises(errors.PermissionDenied, match="only artifacts in the system namespace"):
        rules.check_shareable(_record("a").artifact)
    rules.check_shareable(_record("system").artifact)
    with pytest.raises(errors.PermissionDenied, match="artifact not shared"):
        rules.check_unshareable(_record("system").artifact)


def test_new_records_default_their_max_versions() -> None:
    record = _record()
    assert record.artifact.max_versions == 3
    assert record.artifact.state == artifact_pb2.ARTIFACT_STATE_INITIAL
    assert record.artifact.HasField("metadata")


def test_a_blob_answers_its_sha512_or_null_before_it_has_one() -> None:
    sealed = artifact_pb2.Blob(uuid="b", sha512="ab" * 64)
    assert rules.blob_checksum(sealed, "sha512") == "ab" * 64
    assert rules.blob_checksum(artifact_pb2.Blob(uuid="b"), "sha512") is None


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "xxh128"])
def test_checksums_sfmesh_never_computes_are_refused_by_name(algorithm: str) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        rules.blob_checksum(artifact_pb2.Blob(uuid="b", sha512="ab" * 64), algorithm)
    assert refused.value.message == f"sfmesh records only the sha512 of a blob, not its {algorithm}"
    assert refused.value.reason == "CHECKSUM_NOT_RECORDED"


@pytest.mark.parametrize("algorithm", ["md5", "SHA512", "", "sha512 "])
def test_unknown_algorithms_are_refused(algorithm: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=r"^unknown hash algorithm$"):
        rules.blob_checksum(artifact_pb2.Blob(uuid="b", sha512="ab" * 64), algorithm)
    with pytest.raises(errors.InvalidArgument, match=r"^unknown hash algorithm$"):
        rules.check_algorithm(algorithm)
