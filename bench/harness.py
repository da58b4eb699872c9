"""What every benchmark starts from: the whole mesh on free ports."""

from __future__ import annotations

import contextlib
import ssl
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from devmesh.mesh import Mesh, Ports, remove_leftovers


@contextlib.contextmanager
def quiet_mesh(
    *,
    node_agent: bool = False,
    settings: dict[str, str] | None = None,
    tls: bool = False,
    metrics: bool = True,
) -> Iterator[Mesh]:
    """A mesh in a temporary state folder (one qemu can traverse), its logs
    discarded at the source: copying them would cost the load generator's
    process GIL time on every request. Without this machine's node agent
    unless asked: benchmarks of the api place onto simulated nodes. With
    `tls`, every role speaks TLS (`Mesh.tls`); without `metrics`, no service
    serves or records metrics (`Mesh.metrics`)."""
    with tempfile.TemporaryDirectory(prefix="sfmesh-bench-", dir="/var/tmp") as state:
        Path(state).chmod(0o755)
        mesh = Mesh(
            state_dir=Path(state),
            ports=Ports.free(),
            sink=None,
            node_agent=node_agent,
            node_name=f"bench-{uuid.uuid4().hex[:6]}",
            settings=settings or {},
            tls=tls,
            metrics=metrics,
        )
        mesh.start()
        try:
            yield mesh
        finally:
            mesh.stop()
            if node_agent:
                remove_leftovers(mesh.node_name)


def trusting(mesh: Mesh) -> ssl.SSLContext | None:
    """An HTTPS client context trusting a TLS mesh's CA; None for plaintext."""
    if mesh.certificates is None:
        return None
    return ssl.create_default_context(cafile=mesh.certificates.ca)
