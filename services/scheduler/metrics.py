"""The scheduler's metrics: placements made, refusals by reason, and whether
this replica leads."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.scheduler.placement import REFUSAL_REASONS

NOT_REPORTED = "nodes_not_reported"
"""The refusal reason while a created node has not reported yet (a 503)."""

PLACEMENTS = Counter("sfmesh_scheduler_placements_total", "Instances placed on a node.")
REFUSALS = Counter(
    "sfmesh_scheduler_refusals_total",
    "Placements refused, by the step that refused them.",
    ["reason"],
)
IS_LEADER = Gauge("sfmesh_scheduler_is_leader", "1 while this replica leads, else 0.")
for _reason in (*REFUSAL_REASONS, NOT_REPORTED):  # every series exists from the start, at 0
    REFUSALS.labels(_reason)
