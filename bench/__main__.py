"""`make bench`: run every benchmark and print its figures;
`python -m bench NAME...` runs only those named."""

from __future__ import annotations

import sys
from collections.abc import Callable

from bench import (
    agent,
    artifacts,
    blob_copy,
    console,
    event_ingest,
    event_postgres,
    event_reads,
    failover,
    gateway,
    instances,
    metrics,
    networks,
    peer,
    recovery,
    tracing,
    vms,
)
from bench.harness import quiet_mesh


def _event_ingest() -> None:
    with quiet_mesh() as mesh:
        event_ingest.main(mesh.address("eventlog"), state_dir=mesh.state_dir)


BENCHMARKS: dict[str, Callable[[], None]] = {
    "gateway": gateway.main,
    "instances": instances.main,
    "event_ingest": _event_ingest,
    "event_reads": event_reads.main,
    "event_postgres": event_postgres.main,
    "vms": vms.main,
    "networks": networks.main,
    "recovery": recovery.main,
    "peer": peer.main,
    "artifacts": artifacts.main,
    "blob_copy": blob_copy.main,
    "failover": failover.main,
    "console": console.main,
    "agent": agent.main,
    "metrics": metrics.main,
    "tracing": tracing.main,
}


def main() -> None:
    """Run the named benchmarks in turn, or all of them."""
    names = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    for name in names:
        BENCHMARKS[name]()


if __name__ == "__main__":
    main()
