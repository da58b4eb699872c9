"""`make bench`: run every benchmark and print its figures."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench import event_ingest, event_reads, gateway, instances
from devmesh.mesh import Mesh, Ports


def main() -> None:
    """Run the benchmarks in turn."""
    gateway.main()
    instances.main()
    with tempfile.TemporaryDirectory() as state:
        mesh = Mesh(state_dir=Path(state), ports=Ports.free(), sink=None)
        mesh.start()
        try:
            event_ingest.main(mesh.address("eventlog"), state_dir=mesh.state_dir)
        finally:
            mesh.stop()
    event_reads.main()


if __name__ == "__main__":
    main()
