"""What every benchmark starts from: the whole mesh on free ports."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from devmesh.mesh import Mesh, Ports


@contextlib.contextmanager
def quiet_mesh() -> Iterator[Mesh]:
    """A mesh in a temporary state folder, its logs discarded at the source:
    copying them would cost the load generator's process GIL time on every
    request."""
    with tempfile.TemporaryDirectory() as state:
        mesh = Mesh(state_dir=Path(state), ports=Ports.free(), sink=None)
        mesh.start()
        try:
            yield mesh
        finally:
            mesh.stop()
