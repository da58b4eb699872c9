"""sfmesh against the real Shaken Fist API, with the same load script.

Runs the peers' `load.py` (a separate process: `--scenarios get
--concurrency 8`, `GET /instances/{uuid}` round robin over every instance)
against a mesh seeded with `--instances` instances and against the Shaken
Fist API given by `--sf-url`/`--sf-key` (or `SF_URL`, `SF_KEY`,
`SF_NAMESPACE`), seeded beforehand with the peers' `seed_sf.py`. The two
sides alternate, `--rounds` pairs with Shaken Fist first in each, so a change
in the machine's load weighs on both; it prints each pair's ratio and their
median (target >= 10x). Without a peer, or without `load.py`, it says so and
measures nothing; `make test` never runs it.

    SF_URL=http://127.0.0.1:13100 SF_KEY=$(cat ~/.cache/sf-peer/data/system_key) \\
        python -m bench peer

Only one side runs at a time; the other stays up, idle. The ratio is only
as steady as the machine: Shaken Fist's five sync workers suffer most from
other load on the same cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.gateway import Rest
from bench.harness import quiet_mesh
from bench.simulated_nodes import SimulatedNodes

DEFAULT_LOAD = Path(__file__).resolve().parents[1] / ".." / "shared" / "peers" / "load.py"
SPEC = {"cpus": 1, "memory": 256, "disk": [{"size": 1, "base": "debian:11"}]}
SEED_CLIENTS = 8


def parse(argv: list[str]) -> argparse.Namespace:
    """Options, defaulting to the environment."""
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--sf-url", default=env("SF_URL"), help="the Shaken Fist API (SF_URL)")
    parser.add_argument("--sf-key", default=env("SF_KEY"), help="its namespace key (SF_KEY)")
    parser.add_argument(
        "--sf-namespace", default=env("SF_NAMESPACE", "system"), help="(SF_NAMESPACE)"
    )
    parser.add_argument(
        "--load", type=Path, default=Path(env("SF_LOAD", str(DEFAULT_LOAD))), help="(SF_LOAD)"
    )
    parser.add_argument("--python", default=sys.executable, help="runs load.py (needs requests)")
    parser.add_argument("--instances", type=int, default=100, help="seeded into the mesh")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per side")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both sides")
    return parser.parse_args(argv)


def load(args: argparse.Namespace, url: str, namespace: str, key: str) -> float:
    """Successful `GET /instances/{uuid}` per second from `load.py` at 8 clients."""
    with tempfile.TemporaryDirectory(prefix="sfmesh-peer-") as folder:
        out = Path(folder) / "result.json"
        argv = [args.python, str(args.load), "--url", url, "--namespace", namespace]
        argv += ["--key", key, "--scenarios", "get", "--concurrency", "8"]
        argv += ["--duration", str(args.duration), "--out", str(out)]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        (run,) = json.loads(out.read_text())["runs"]
    if run["errors"]:
        raise RuntimeError(f"{url}: {run['errors']} errors, e.g. {run['error_samples']}")
    return float(run["rps"])


@contextlib.contextmanager
def seeded_mesh(instances: int) -> Iterator[tuple[str, str]]:
    """A fresh mesh seeded with `instances` instances; yields its REST URL
    and the system key."""
    with quiet_mesh() as mesh, SimulatedNodes(mesh, 1, cpus=4 * instances):
        token = Rest.token(mesh)

        def create(first: int) -> None:
            client = Rest(mesh.ports.gateway, token)
            for index in range(first, instances, SEED_CLIENTS):
                client.call("POST", "/instances", {"name": f"peer-{index}", **SPEC})

        with ThreadPoolExecutor(SEED_CLIENTS) as pool:
            list(pool.map(create, range(SEED_CLIENTS)))
        yield f"http://127.0.0.1:{mesh.ports.gateway}", mesh.system_key


def main(argv: list[str] | None = None) -> None:
    """Measure both sides in alternating rounds and print each pair's ratio
    and their median; `make bench` gives no `argv`, so options come from the
    environment."""
    args = parse(argv or [])
    if not args.sf_url or not args.sf_key:
        print("peer benchmark skipped: no Shaken Fist peer (set SF_URL and SF_KEY)")
        return
    if not args.load.is_file():
        print(f"peer benchmark skipped: no load script at {args.load} (set SF_LOAD)")
        return
    print("GET /instances/{uuid} with load.py, 8 clients (sfmesh vs Shaken Fist), alternating")
    ratios = []
    with seeded_mesh(args.instances) as (url, key):
        for round_ in range(1, args.rounds + 1):
            theirs = load(args, args.sf_url, args.sf_namespace, args.sf_key)
            ours = load(args, url, "system", key)
            ratios.append(ours / theirs)
            print(
                f"  round {round_}: sfmesh {ours:.1f}/s   Shaken Fist {theirs:.1f}/s   "
                f"ratio {ratios[-1]:.1f}x"
            )
    print(f"  median ratio {statistics.median(ratios):.1f}x (target >= 10x)")


if __name__ == "__main__":
    main(sys.argv[1:])
