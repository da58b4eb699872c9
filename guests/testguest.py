"""The project's tiny Linux test guest, built on demand.

`ensure_test_guest(build_dir)` returns `build_dir / "testguest.raw"`, a
BIOS-bootable raw disk (syslinux, Debian's kernel, a busybox initramfs) that
prints greppable ``TESTGUEST ...`` marker lines on its serial console. See
``guests/testguest/rc.boot`` for the markers and ``guests/testguest/build.sh``
for how the image is made.

The image is rebuilt only when it is missing or when the files in
``guests/testguest/`` changed since it was built: a stamp file beside the image
holds a hash of their names, modes and contents (a hash rather than mtimes, so
a fresh checkout does not force a rebuild and an edit during a build is not
missed). Concurrent callers, in threads or processes, serialise on an
``fcntl.flock`` lock file in ``build_dir``; the build itself publishes the image
with an atomic rename. `ensure_guest` does the same for a variant of this
guest (``guests/agentguest.py``), built by the same script.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent / "testguest"
IMAGE_NAME = "testguest.raw"


class GuestBuildError(RuntimeError):
    """build.sh failed; the message carries the tail of its output."""


def source_digest(source_dir: Path = SOURCE_DIR) -> str:
    """A hash of every file under `source_dir`: relative path, executable bit
    and content, in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in source_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(source_dir).as_posix()
        executable = os.access(path, os.X_OK)
        digest.update(f"{relative}\0{int(executable)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def ensure_test_guest(build_dir: Path) -> Path:
    """Return `build_dir / "testguest.raw"`, building it first when it is
    missing or older than the sources in guests/testguest/.

    Blocks while another thread or process builds into the same folder, then
    uses its result. Raises `GuestBuildError` when the build fails.
    """
    return ensure_guest(build_dir, IMAGE_NAME)


def ensure_guest(
    build_dir: Path,
    image_name: str,
    *,
    variant_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Return `build_dir / image_name`, built by guests/testguest/build.sh
    (with `variant_dir` as its variant, and `env` over this process's
    environment) when missing or older than the sources it is built from
    (guests/testguest/ and the variant's folder). Blocks while another
    thread or process builds it, then uses its result."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    image = build_dir / image_name
    stamp = build_dir / f"{image_name}.stamp"
    sources: Sequence[Path] = (SOURCE_DIR,) if variant_dir is None else (SOURCE_DIR, variant_dir)
    command = ["bash", str(SOURCE_DIR / "build.sh"), str(build_dir)]
    if variant_dir is not None:
        command.append(str(variant_dir))

    with open(build_dir / f"{image_name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        # Hash before building: an edit made during the build leaves a stale
        # stamp and so triggers the next rebuild.
        wanted = "+".join(source_digest(folder) for folder in sources)
        if image.exists() and _read(stamp) == wanted:
            return image

        stamp.unlink(missing_ok=True)
        result = subprocess.run(
            command,
            env=None if env is None else {**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join(result.stdout.splitlines()[-30:])
            raise GuestBuildError(
                f"{' '.join(command[1:])} failed (exit {result.returncode}):\n{tail}"
            )
        if not image.exists():
            raise GuestBuildError(f"guests/testguest/build.sh left no {image}")

        temporary = stamp.with_name(f".{stamp.name}.{os.getpid()}")
        temporary.write_text(wanted + "\n")
        temporary.replace(stamp)
        return image


def _read(path: Path) -> str | None:
    """The stripped content of `path`, or None when it does not exist."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
