"""services/node_agent/blob_rules.py: the rendezvous ranking, who pulls a
blob short of copies, and when a local copy must go."""

from __future__ import annotations

import itertools

from sfmesh.v1 import artifact_pb2, records_pb2

from services.node_agent.blob_rules import fault, pulls, rank

CREATED = artifact_pb2.BLOB_STATE_CREATED
DELETED = artifact_pb2.BLOB_STATE_DELETED
NODES = frozenset({"n1", "n2", "n3", "n4", "n5"})


def blob(
    locations: list[str], state: artifact_pb2.BlobState = CREATED, size: int = 10
) -> artifact_pb2.Blob:
    return artifact_pb2.Blob(uuid="b-1", state=state, size=size, locations=locations)


def test_rank_is_the_same_whatever_the_order_and_differs_by_blob() -> None:
    orders = {tuple(rank("b-1", p)) for p in itertools.permutations(sorted(NODES))}
    assert len(orders) == 1
    firsts = {rank(f"b-{n}", NODES)[0] for n in range(50)}
    assert len(firsts) > 1  # the load spreads over nodes


def test_rank_is_stable_when_another_node_leaves() -> None:
    full = rank("b-1", NODES)
    gone = full[-1]
    assert rank("b-1", NODES - {gone}) == full[:-1]


def test_exactly_the_needed_nodes_pull() -> None:
    record = blob(["n1"])
    pulling = [node for node in sorted(NODES) if pulls(record, node, NODES, 3)]
    assert pulling == sorted(rank("b-1", NODES - {"n1"})[:2])


def test_nobody_pulls_at_the_factor_a_deleted_blob_or_without_a_live_holder() -> None:
    assert not any(pulls(blob(["n1", "n2"]), n, NODES, 2) for n in NODES)
    assert not any(pulls(blob(["n1"], DELETED), n, NODES, 2) for n in NODES)
    assert not any(pulls(blob(["gone"]), n, NODES, 2) for n in NODES)
    assert not pulls(blob(["n1"]), "not-alive", NODES, 2)


def test_copies_on_dead_nodes_do_not_count() -> None:
    record = blob(["n1", "dead"])
    assert sum(pulls(record, n, NODES, 2) for n in NODES) == 1


def test_the_reach_widens_with_time_short() -> None:
    record = blob(["n1"])
    order = rank("b-1", NODES - {"n1"})
    assert not pulls(record, order[1], NODES, 2, short_for=59.0, escalate=60.0)
    assert pulls(record, order[1], NODES, 2, short_for=60.0, escalate=60.0)


def stored(
    state: artifact_pb2.BlobState = CREATED,
    locations: list[str] | None = None,
    deleted_at: float = 0.0,
) -> records_pb2.BlobRecord:
    return records_pb2.BlobRecord(
        blob=blob(locations if locations is not None else ["me"], state), deleted_at=deleted_at
    )


def test_a_listed_copy_missing_or_of_the_wrong_size_goes() -> None:
    assert fault(stored(), "me", None, 0.0, 100.0, 50.0) == "its file is missing"
    assert fault(stored(), "me", 9, 0.0, 100.0, 50.0) == "its file has 9 bytes, not 10"
    assert fault(stored(), "me", 10, 0.0, 100.0, 50.0) is None


def test_an_unlisted_file_of_a_live_blob_stays() -> None:
    assert fault(stored(locations=[]), "me", 10, 0.0, 1e9, 50.0) is None


def test_deleted_and_unknown_blobs_go_after_the_grace() -> None:
    deleted = stored(DELETED, deleted_at=100.0)
    assert fault(deleted, "me", 10, 0.0, 120.0, 50.0) is None
    assert fault(deleted, "me", 10, 0.0, 150.0, 50.0) == "its blob is deleted"
    assert fault(stored(DELETED, [], 100.0), "me", None, 0.0, 500.0, 50.0) is None
    assert fault(None, "me", 10, 100.0, 120.0, 50.0) is None
    assert fault(None, "me", 10, 100.0, 150.0, 50.0) == "its blob has no record"
    assert fault(None, "me", None, 0.0, 150.0, 50.0) is None
