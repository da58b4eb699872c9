"""services/scheduler/node_states.py: created while present, missing once
the presence lease is gone, back when it returns; deleted is final."""

from __future__ import annotations

import pytest
from sfmesh.v1 import node_service_pb2, records_pb2, scheduler_service_pb2

from services.scheduler.node_states import (
    CREATED,
    DELETED,
    MISSING,
    NodeDeleted,
    NotPresent,
    lapsed,
    registered,
    returned,
)

FACTS = scheduler_service_pb2.HypervisorFacts(node="hv1", address="10.0.0.5:13020")
REPORT = scheduler_service_pb2.ReportNodeRequest(cpus_total=4, facts=FACTS)


def record(state: int) -> records_pb2.NodeRecord:
    kept = records_pb2.NodeRecord(name="hv1", state=state, deleted_at=5.0)  # type: ignore[arg-type]
    kept.metadata["rack"] = "b2"
    return kept


def test_a_first_report_creates_the_record() -> None:
    written = registered(None, FACTS, REPORT, 10.0, present=True)
    assert written.became == "created"
    assert (written.record.name, written.record.state) == ("hv1", CREATED)
    assert written.record.lastseen == 10.0
    assert written.record.last_report.cpus_total == 4
    assert not written.record.last_report.HasField("facts")


def test_a_report_keeps_the_apis_fields() -> None:
    written = registered(record(CREATED), FACTS, REPORT, 10.0, present=None)
    assert written.became == ""
    assert dict(written.record.metadata) == {"rack": "b2"}


def test_a_missing_node_reporting_while_present_is_back() -> None:
    assert registered(record(MISSING), FACTS, REPORT, 10.0, present=True).became == "back"


@pytest.mark.parametrize("present", [True, False, None])
def test_a_deleted_node_is_refused(present: bool | None) -> None:
    with pytest.raises(NodeDeleted) as raised:
        registered(record(DELETED), FACTS, REPORT, 10.0, present=present)
    assert raised.value.reason == "NODE_DELETED"
    assert "node hv1 was deleted" in raised.value.message


def test_a_report_without_presence_is_refused() -> None:
    with pytest.raises(NotPresent):
        registered(None, FACTS, REPORT, 10.0, present=False)
    with pytest.raises(NotPresent):  # its lease went while the stream lived
        registered(record(MISSING), FACTS, REPORT, 10.0, present=None)


def test_lapsed_and_returned() -> None:
    missing = lapsed(record(CREATED))
    assert missing is not None
    assert (missing.record.state, missing.became) == (MISSING, "missing")
    assert dict(missing.record.metadata) == {"rack": "b2"}
    back = returned(missing.record)
    assert back is not None
    assert (back.record.state, back.became) == (CREATED, "back")


@pytest.mark.parametrize("state", [MISSING, DELETED, node_service_pb2.NODE_STATE_ERROR])
def test_only_a_created_node_lapses(state: int) -> None:
    assert lapsed(record(state)) is None


@pytest.mark.parametrize("state", [CREATED, DELETED])
def test_only_a_missing_node_returns(state: int) -> None:
    assert returned(record(state)) is None
