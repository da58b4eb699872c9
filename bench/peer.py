"""sfmesh against the real Shaken Fist API, with the same load script.

Runs the peers' `load.py` (a separate process: `--scenarios get
--concurrency 8`, `GET /instances/{uuid}` round robin over every instance)
against a mesh seeded with `--instances` instances, stops the mesh, then runs
it against the Shaken Fist API given by `--sf-url`/`--sf-key` (or `SF_URL`,
`SF_KEY`, `SF_NAMESPACE`), seeded beforehand with the peers' `seed_sf.py`.
Prints both throughputs and their ratio (target >= 10x). Without a peer, or
without `load.py`, it says so and measures nothing; `make test` never runs it.

    SF_URL=http://127.0.0.1:13100 SF_KEY=$(cat ~/.cache/sf-peer/data/system_key) \\
        python -m bench peer

Figures (N=100, 8 clients, 10 s; 2 cores shared with other engineers' test
runs, load average 7-9, which weighs on Shaken Fist's 5 sync workers most):

| run | sfmesh req/s | Shaken Fist req/s | ratio |
|---|---|---|---|
| before issue 12's caches (by hand, load.py) | 470 | 51.6 | 9.1x |
| first run of this bench, before them | 222 | 13.5 | 16.4x |
| after, 1 | 511 | 38.2 | 13.4x |
| after, 2 | 523 | 19.3 | 27.1x |

Against the peer's figures on a quiet machine (46.6-60.6/s, its README),
511-523/s is 8.4-11.2x: the ratio is only as steady as the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
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


def sfmesh_rate(args: argparse.Namespace) -> float:
    """load.py against a fresh mesh seeded with `args.instances` instances."""
    with quiet_mesh() as mesh, SimulatedNodes(mesh, 1, cpus=4 * args.instances):
        token = Rest.token(mesh)

        def create(first: int) -> None:
            client = Rest(mesh.ports.gateway, token)
            for index in range(first, args.instances, SEED_CLIENTS):
                client.call("POST", "/instances", {"name": f"peer-{index}", **SPEC})

        with ThreadPoolExecutor(SEED_CLIENTS) as pool:
            list(pool.map(create, range(SEED_CLIENTS)))
        url = f"http://127.0.0.1:{mesh.ports.gateway}"
        return load(args, url, "system", mesh.system_key)


def main(argv: list[str] | None = None) -> None:
    """Measure both sides, one after the other, and print the ratio; `make
    bench` gives no `argv`, so options come from the environment."""
    args = parse(argv or [])
    if not args.sf_url or not args.sf_key:
        print("peer benchmark skipped: no Shaken Fist peer (set SF_URL and SF_KEY)")
        return
    if not args.load.is_file():
        print(f"peer benchmark skipped: no load script at {args.load} (set SF_LOAD)")
        return
    ours = sfmesh_rate(args)
    theirs = load(args, args.sf_url, args.sf_namespace, args.sf_key)
    print("GET /instances/{uuid} with load.py, 8 clients (sfmesh vs Shaken Fist)")
    print(
        f"  sfmesh {ours:.1f}/s   Shaken Fist {theirs:.1f}/s   "
        f"ratio {ours / theirs:.1f}x (target >= 10x)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
