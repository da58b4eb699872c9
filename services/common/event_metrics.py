"""The event emitter's metrics: events emitted, events not yet acknowledged
by the eventlog (on disk in the spool, or on their way), and events sent
again."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EMITTED = Counter("sfmesh_events_emitted_total", "Events emitted by this process.")
SPOOL_DEPTH = Gauge(
    "sfmesh_events_spool_depth",
    "Events spooled that the eventlog has not acknowledged yet.",
)
REPLAYED = Counter(
    "sfmesh_events_replayed_total",
    "Events sent again: loaded from the spool at start, or unacknowledged when their stream broke.",
)
