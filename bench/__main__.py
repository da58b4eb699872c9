"""`make bench`: run every benchmark and print its figures."""

from __future__ import annotations

from bench import event_ingest, event_reads, gateway, instances
from bench.harness import quiet_mesh


def main() -> None:
    """Run the benchmarks in turn."""
    gateway.main()
    instances.main()
    with quiet_mesh() as mesh:
        event_ingest.main(mesh.address("eventlog"), state_dir=mesh.state_dir)
    event_reads.main()


if __name__ == "__main__":
    main()
