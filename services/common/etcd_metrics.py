"""The etcd client's metrics: how long each request to one member took, by
operation, and how often a request was sent again (to the next member after
one stopped answering, or a write whose answer was lost)."""

from __future__ import annotations

from typing import Literal, get_args

from prometheus_client import Counter, Histogram

Operation = Literal[
    "get",
    "range",
    "txn",
    "delete",
    "members",
    "lease-grant",
    "lease-keepalive",
    "lease-revoke",
    "watch-open",
]
"""What a request does: `get` reads keys by name (batched ones included),
`range` reads a page of a prefix, `txn` writes, `watch-open` creates a watch
(until etcd confirms it)."""
OPERATIONS: tuple[Operation, ...] = get_args(Operation)

REQUEST_SECONDS = Histogram(
    "sfmesh_etcd_request_duration_seconds",
    "Seconds one request to an etcd member took, failed ones included.",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RETRIES = Counter(
    "sfmesh_etcd_retries_total",
    "etcd requests sent again: to the next member after one stopped answering, "
    "a write whose answer was lost, a watch reopened.",
    ["operation"],
)
for _operation in OPERATIONS:  # every series exists from the start, at 0
    REQUEST_SECONDS.labels(_operation)
    RETRIES.labels(_operation)
