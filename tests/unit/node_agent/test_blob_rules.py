"""services/node_agent/blob_rules.py: the rendezvous ranking, who pulls a
blob short of copies, when a local copy must go, and when a blob left
`initial` is abandoned."""

from __future__ import annotations

import itertools

from sfmesh.v1 import artifact_pb2, records_pb2

from services.node_agent.blob_rules import UNNAMED_MAKER_GRACE, abandoned, fault, pulls, rank

INITIAL = artifact_pb2.BLOB_STATE_INITIAL
CREATED = artifact_pb2.BLOB_STATE_CREATED
ERROR = artifact_pb2.BLOB_STATE_ERROR
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


def test_the_file_of_a_blob_in_error_goes_after_the_grace() -> None:
    failed = stored(ERROR, [])
    assert fault(failed, "me", 10, 100.0, 120.0, 50.0) is None
    assert fault(failed, "me", 10, 100.0, 150.0, 50.0) == "its blob could not be made"
    assert fault(failed, "me", None, 0.0, 150.0, 50.0) is None
    assert fault(stored(INITIAL, []), "me", 10, 0.0, 1e9, 50.0) is None  # may be being made


GRACE = 300.0


def reserved(
    maker: str, created_at: float = 1000.0, state: artifact_pb2.BlobState = INITIAL
) -> records_pb2.BlobRecord:
    return records_pb2.BlobRecord(
        blob=artifact_pb2.Blob(uuid="b-1", state=state), created_at=created_at, maker_node=maker
    )


def judged(
    record: records_pb2.BlobRecord,
    node: str,
    now: float,
    *,
    making: frozenset[str] = frozenset(),
    alive: frozenset[str] = NODES,
    lastseen: dict[str, float] | None = None,
) -> str | None:
    seen = lastseen if lastseen is not None else {name: now for name in alive}
    return abandoned(record, node, making=making, alive=alive, lastseen=seen, now=now, grace=GRACE)


def test_a_young_reservation_is_left_to_its_maker() -> None:
    gone = NODES - {"n1"}
    for node in NODES:
        assert judged(reserved("n1"), node, 1000.0 + GRACE - 1, alive=gone, lastseen={}) is None


def test_the_maker_fails_what_it_is_not_making_once_the_grace_is_over() -> None:
    now = 1000.0 + GRACE
    assert judged(reserved("n1"), "n1", now, making=frozenset({"b-1"})) is None
    reason = judged(reserved("n1"), "n1", now)
    assert reason is not None and reason.startswith("node n1, its maker, is not making it")


def test_others_leave_a_live_maker_alone_whatever_its_age() -> None:
    assert judged(reserved("n1", created_at=0.0), "n2", 1e9) is None


def test_others_fail_it_once_the_maker_is_gone_for_the_grace() -> None:
    now = 1000.0 + 2 * GRACE
    gone = NODES - {"n1"}
    quiet = {"n1": now - GRACE + 1}
    assert judged(reserved("n1"), "n2", now, alive=gone, lastseen=quiet) is None
    silent = judged(reserved("n1"), "n2", now, alive=gone, lastseen={"n1": now - GRACE})
    assert silent == "node n1, its maker, is gone: no report for 300 s"
    unknown = judged(reserved("n1"), "n2", now, alive=gone, lastseen={})
    assert unknown == "node n1, its maker, has no node record"


def test_only_initial_blobs_are_abandoned() -> None:
    for state in (CREATED, ERROR, DELETED):
        assert judged(reserved("n1", created_at=0.0, state=state), "n1", 1e9) is None


def test_a_reservation_naming_no_maker_is_abandoned_after_a_day() -> None:
    assert judged(reserved("", created_at=0.0), "n2", UNNAMED_MAKER_GRACE - 1) is None
    reason = judged(reserved("", created_at=0.0), "n2", UNNAMED_MAKER_GRACE)
    assert reason == "it names no maker and has been initial for 86400 s"
