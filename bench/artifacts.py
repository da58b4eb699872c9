"""Images as artifacts and blobs, in one run on one mesh with this machine's
node agent:

- create -> `created` from a cached 1 GiB image against the boot-sector
  image's, both already on the node, interleaved: the p50 ratio (target
  <= 1.2x: disks are qcow2 overlays on the cached blob, so a larger image
  costs nothing at boot);
- the node agent's `disks` stage of an instance whose image is already on
  the node (target <= 50 ms), from its stage timings.

- `sf-client artifact upload` of a 1 GiB file through the gateway (the
  client's own loop of appends, then the conversion into a checksummed
  blob) against `dd` writing the same file to the same disk (target: at
  least 1/3 of dd's rate), with the gateway's resident memory sampled
  throughout (target: at most 50 MB of growth); then the client's default,
  which first hashes the file itself, for scale.

The 1 GiB image is the boot sector followed by zeros, served from loopback;
its first fetch (download and sha512) is timed too, for scale.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.gateway import Rest
from bench.harness import quiet_mesh
from bench.vms import STAGES, CreatedWatch, stage_seconds
from devmesh.client_config import write_client_config
from devmesh.mesh import Mesh
from guests.bootsector import boot_sector
from guests.serve import ImageServer

ROUNDS = 10
BIG = 1 << 30
UPLOAD = 1 << 30
SF_CLIENT = str(Path(sys.executable).parent / "sf-client")


@contextmanager
def images() -> Iterator[tuple[str, str]]:
    """The boot sector, and a 1 GiB image starting with it, on a loopback server."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as folder:
        server = ImageServer(Path(folder))
        try:
            small = server.publish("boot.raw", boot_sector())
            big = Path(folder) / "big.raw"
            with big.open("wb") as out:
                out.write(boot_sector())
                out.truncate(BIG)
            yield small, server.url("big.raw")
        finally:
            server.close()


def create(rest: Rest, name: str, base: str) -> tuple[str, float]:
    """POST /instances of one disk on `base`; the uuid and when it was sent."""
    spec = {"name": name, "cpus": 1, "memory": 128, "disk": [{"size": 1, "base": base}]}
    sent = time.perf_counter()
    reply = rest.call("POST", "/instances", spec)
    return str(json.loads(reply)["uuid"]), sent


class PeakMemory:
    """A process's resident memory, sampled on a thread every 20 ms."""

    def __init__(self, pid: int) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self.start = self._rss()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _rss(self) -> int:
        for line in self._status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> int:
        """Bytes of growth over the start, at the peak."""
        self._stop.set()
        self._thread.join()
        return self.peak - self.start


def sf_client_upload(home: Path, name: str, source: Path, *flags: str) -> float:
    """Seconds `sf-client artifact upload` takes."""
    started = time.perf_counter()
    subprocess.run(
        [SF_CLIENT, "--json", "artifact", "upload", *flags, name, str(source)],
        check=True,
        capture_output=True,
        env={**os.environ, "HOME": str(home)},
    )
    return time.perf_counter() - started


def upload_rate(mesh: Mesh) -> None:
    """sf-client's upload of UPLOAD bytes against dd of the same file, same disk.

    The client's default first hashes the whole file itself (sha512, in
    4 KiB reads) to look for a blob of the same content; `--no-checksum`
    skips that, so its time is the upload through the mesh alone. Both are
    timed, each of a file of its own (the second would otherwise reuse the
    first's blob)."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as folder:
        sources = [Path(folder) / "upload-a.bin", Path(folder) / "upload-b.bin"]
        for source in sources:
            with source.open("wb") as out:
                for _ in range(UPLOAD >> 20):
                    out.write(os.urandom(1 << 20))
        target = mesh.state_dir / "dd.bin"
        started = time.perf_counter()
        argv = ["dd", f"if={sources[0]}", f"of={target}", "bs=1M", "conv=fsync", "status=none"]
        subprocess.run(argv, check=True)
        dd_seconds = time.perf_counter() - started
        target.unlink()
        home = Path(folder) / "home"
        (home / ".shakenfist").parent.mkdir()
        write_client_config(
            home / ".shakenfist", apiurl=mesh.gateway_url, namespace="system", key=mesh.system_key
        )
        gateway = mesh.children["gateway"].process
        assert gateway is not None
        memory = PeakMemory(gateway.pid)
        through = sf_client_upload(home, "bench-upload", sources[0], "--no-checksum")
        growth = memory.stop()
        default = sf_client_upload(home, "bench-upload-checked", sources[1])
    mib = UPLOAD / (1 << 20)
    print(
        f"  sf-client artifact upload --no-checksum of {mib:.0f} MiB: {mib / through:.0f} MiB/s, "
        f"dd of the same file: {mib / dd_seconds:.0f} MiB/s, "
        f"ratio {dd_seconds / through:.2f} (target >= 0.33)"
    )
    print(
        f"  the same with the client's own sha512 first (its default): {mib / default:.0f} MiB/s, "
        f"ratio {dd_seconds / default:.2f}"
    )
    print(f"  gateway memory growth during the upload: {growth / 1e6:.1f} MB (target <= 50 MB)")


def main() -> None:
    """Start a mesh with this machine's node agent and measure."""
    print("artifacts benchmark (this machine's node agent, images on loopback)")
    with images() as (small, big), quiet_mesh(node_agent=True) as mesh:
        upload_rate(mesh)
        token = Rest.token(mesh)
        rest = Rest(mesh.ports.gateway, token)
        watch = CreatedWatch(mesh, token)
        made: list[str] = []
        try:
            started = time.perf_counter()
            for base in (small, big):  # first fetches: into blobs
                uuid, _ = create(rest, f"warm-{len(made)}", base)
                watch.wait(uuid, timeout=300)
                made.append(uuid)
            fetched = time.perf_counter() - started
            seconds: dict[str, list[float]] = {small: [], big: []}
            stages: dict[str, list[dict[str, float]]] = {small: [], big: []}
            for index in range(ROUNDS):
                order = (small, big) if index % 2 == 0 else (big, small)
                for base in order:
                    uuid, sent = create(rest, f"r{index}-{len(made)}", base)
                    seconds[base].append(watch.wait(uuid) - sent)
                    made.append(uuid)
                    stages[base].append(stage_seconds(rest, uuid))
                while len(made) > 2:  # keep only the warm ones running
                    rest.call("DELETE", f"/instances/{made.pop()}")
        finally:
            for uuid in made:
                rest.call("DELETE", f"/instances/{uuid}")
            watch.close()
    small_p50, big_p50 = (statistics.median(seconds[b]) for b in (small, big))
    disk_p50 = statistics.median(found.get("disks", float("nan")) for found in stages[big])
    print(f"  first fetches (boot sector, then 1 GiB, download and sha512): {fetched:.1f} s")
    print(
        f"  create -> created from a cached image: 1 GiB p50 {big_p50 * 1000:.0f} ms, "
        f"boot sector p50 {small_p50 * 1000:.0f} ms, ratio {big_p50 / small_p50:.2f}x "
        "(target <= 1.2x)"
    )
    print(
        f"  disks stage of an image already on the node: p50 {disk_p50 * 1000:.1f} ms "
        "(target <= 50 ms)"
    )
    for base, label in ((big, "1 GiB"), (small, "boot sector")):
        medians = (
            f"{stage} {statistics.median(f.get(stage, 0.0) for f in stages[base]) * 1000:.0f}"
            for stage in STAGES
        )
        print(f"    stages of {label} (ms): {', '.join(medians)}")
