"""The node agent's metrics: the reconciler's pending work, how long each
stage of a create took, the domains by power state, and the bytes fetched
from image URLs and from peers' blobs."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram
from sfmesh.v1 import instance_pb2

from services.common import instance_states as states
from services.common.wire import wire_name

STAGES = ("images", "disks", "config drive", "define", "boot")
"""The stages a create times (its `instance created` event's `seconds`)."""
POWER_STATES = tuple(
    wire_name(instance_pb2.PowerState.DESCRIPTOR, value.number)
    for value in instance_pb2.PowerState.DESCRIPTOR.values
    if value.number != instance_pb2.POWER_STATE_UNSPECIFIED
)

QUEUE_DEPTH = Gauge(
    "sfmesh_node_reconcile_queue_depth",
    "Instances converging, or due to converge again after a failed pass.",
)
STAGE_SECONDS = Histogram(
    "sfmesh_node_stage_duration_seconds",
    "Seconds each stage of a successful create took.",
    ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
DOMAINS = Gauge(
    "sfmesh_node_domains",
    "Created instances on this node by power state, as their records say "
    "(updated with each power audit).",
    ["state"],
)
FETCHED_BYTES = Counter(
    "sfmesh_node_fetched_bytes_total",
    "Bytes received: image downloads from their URLs, blob copies from peers.",
    ["kind"],
)
IMAGE_BYTES = FETCHED_BYTES.labels("image")
BLOB_BYTES = FETCHED_BYTES.labels("blob")
for _stage in STAGES:  # every series exists from the start, at 0
    STAGE_SECONDS.labels(_stage)
for _state in POWER_STATES:
    DOMAINS.labels(_state)


def record_stages(seconds: Mapping[str, float]) -> None:
    """Observe the stages of one create."""
    for stage, took in seconds.items():
        STAGE_SECONDS.labels(stage).observe(took)


def count_domains(hosted: Iterable[instance_pb2.Instance]) -> None:
    """Set DOMAINS from the instances this node hosts: each created one
    counts under its power state, every other state at 0."""
    found = Tally(
        wire_name(instance_pb2.PowerState.DESCRIPTOR, instance.power_state)
        for instance in hosted
        if instance.state == states.CREATED
    )
    for state in POWER_STATES:
        DOMAINS.labels(state).set(found[state])
