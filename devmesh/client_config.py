"""The official client's configuration file, `~/.shakenfist`.

The file has no setting for a CA: the client makes its calls with
`requests`, which trusts the certificates `REQUESTS_CA_BUNDLE` names (in
place of the system's) when set. A mesh with TLS is reached by an `https`
`apiurl` and that variable naming the mesh CA's certificate.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MARKER = "written_by"
MARKER_VALUE = "sfmesh"
CA_VARIABLE = "REQUESTS_CA_BUNDLE"
"""The variable naming the CA certificates the official client trusts."""


def write_client_config(path: Path, *, apiurl: str, namespace: str, key: str) -> bool:
    """Write `path` so that `apiclient.Client()` finds this mesh.

    Only a missing file, or one sfmesh wrote before, is replaced; returns False
    when the file belongs to someone else and was left alone.
    """
    if path.exists():
        try:
            current = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(current, dict) or current.get(MARKER) != MARKER_VALUE:
            return False
    config = {"namespace": namespace, "key": key, "apiurl": apiurl, MARKER: MARKER_VALUE}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle, indent=2)
    return True
