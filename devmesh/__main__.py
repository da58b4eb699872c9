"""`make run`: the whole mesh in the foreground on this machine; Ctrl-C stops it.

The launcher's all-in-one host (devmesh.mesh), plus what a developer wants
on top: a test image served from loopback, the system key printed, and
`~/.shakenfist` written for the official client. `python -m devmesh --tls`
runs it with TLS: certificates from a CA of its own in the state folder,
the gateway on https.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from devmesh.client_config import CA_VARIABLE, write_client_config
from devmesh.mesh import Mesh
from guests.bootsector import boot_sector
from guests.serve import ImageServer
from launcher.config import ConfigError
from launcher.host import stop_on_signals, supervise
from launcher.ports import CannotListen
from launcher.processes import NotReady

TEST_IMAGE = "bootsector"
"""The shorthand of the test guest `make run` serves: a boot sector that
prints `SFMESH BOOT OK` on its serial console, so instances boot offline."""


def main(argv: list[str] | None = None) -> int:
    """Start the mesh, print how to reach it, and wait for Ctrl-C, SIGTERM,
    or a service's exit (which stops the mesh, exit status 1)."""
    parser = argparse.ArgumentParser(prog="python -m devmesh", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tls", action="store_true", help="mutual TLS between the roles, HTTPS on the gateway"
    )
    args = parser.parse_args(argv)
    state_dir = Path(os.environ.get("SFMESH_STATE_DIR", "/var/lib/sfmesh"))
    images = ImageServer(_folder(state_dir / "test-images"))
    url = images.publish(f"{TEST_IMAGE}.raw", boot_sector())
    mesh = Mesh(
        state_dir=state_dir,
        settings={"SFMESH_IMAGE_SHORTHANDS": f"{TEST_IMAGE}={url}"},
        tls=args.tls,
    )
    stop = stop_on_signals()
    try:
        mesh.start()
        print_banner(mesh)
        return supervise(mesh.host, stop) if mesh.host else 1
    except (CannotListen, ConfigError) as exc:
        print(f"sfmesh: {exc}; nothing started", file=sys.stderr)
        return 1
    except NotReady as exc:
        print(f"sfmesh: {exc}; stopping the mesh", file=sys.stderr)
        return 1
    finally:
        print("sfmesh: stopping", flush=True)
        mesh.stop()
        images.close()


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def print_banner(mesh: Mesh) -> None:
    """Say where everything is, and write the client config when that is safe."""
    config = Path.home() / ".shakenfist"
    key = mesh.system_key
    lines = [
        "",
        "sfmesh is up.",
        f"  REST:       {mesh.gateway_url}",
        *(
            f"  gRPC {name + ':':<12}{mesh.address(name)}"
            for name in ("api", "scheduler", "eventlog", "node_agent")
        ),
        *(f"  metrics {name + ':':<12}{mesh.metrics_url(name)}" for name in mesh.services),
        f"  test image: {TEST_IMAGE} (a boot sector printing SFMESH BOOT OK on the console)",
        "  namespace:  system",
        f"  key:        {key}",
        f"  config:     {mesh.config_path} (the launcher's all-in-one host config)",
    ]
    tls = mesh.certificates
    if tls is not None:
        lines.append(f"  TLS:        between every role, and REST; the mesh CA is {tls.ca}")
    if write_client_config(config, apiurl=mesh.gateway_url, namespace="system", key=key):
        lines.append(f"  client:     {config} written; apiclient.Client() finds this mesh")
    else:
        lines += [
            f"  client:     {config} is not sfmesh's; left alone. Export instead:",
            f"    export SHAKENFIST_API_URL={mesh.gateway_url}",
            "    export SHAKENFIST_NAMESPACE=system",
            f"    export SHAKENFIST_KEY={key}",
        ]
    if tls is not None:
        lines += [
            "  the official client trusts the mesh CA (~/.shakenfist cannot say it) with:",
            f"    export {CA_VARIABLE}={tls.ca}",
        ]
    lines.append("Ctrl-C stops everything.")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
