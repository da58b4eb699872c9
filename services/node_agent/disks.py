"""Instance disks: thin async wrappers over `qemu-img`, plus the helpers every
disk-making step shares (running a tool, putting a finished file in place).

Every file is made under a hidden partial name beside its target
(`.<name>.partial`) and renamed into place once complete and synced, so the
final name never holds a half-made disk; a retry after a crash overwrites the
partial. A target that already exists is left alone: making a disk is
idempotent, and nothing checks that an existing file matches the request.

Ownership: qemu runs as `libvirt-qemu`. When the agent runs as root, each
file is chowned to that user and its group with mode 0600 before it gets its
final name; otherwise it stays the agent's own (0600) and qemu reaches it
through libvirt's `dynamic_ownership` (on by default), which chowns a domain's
disks when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
from pathlib import Path

QEMU_USER = "libvirt-qemu"
"""The user qemu runs as under libvirt (Debian's default)."""

FILE_MODE = 0o600
"""Mode of every disk and config drive made here."""

_GIB = 1024**3


class DiskError(Exception):
    """A disk or config drive could not be made: a tool (qemu-img, genisoimage)
    failed, and the message carries its stderr; or a request cannot be met; or
    a file operation failed."""


async def run_tool(*argv: str) -> bytes:
    """Run a program (no shell) and return its stdout; DiskError with its
    stderr when it cannot start or exits non-zero."""
    try:
        child = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise DiskError(f"cannot run {argv[0]}: {error}") from error
    try:
        stdout, stderr = await child.communicate()
    except BaseException:  # cancelled: leave no tool running on
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
        raise
    if child.returncode != 0:
        detail = stderr.decode(errors="replace").strip()
        raise DiskError(f"{argv[0]} failed (exit {child.returncode}): {detail}")
    return stdout


def partial_path(target: Path, suffix: str = "partial") -> Path:
    """The hidden working name beside `target`: `.<name>.<suffix>`."""
    return target.with_name(f".{target.name}.{suffix}")


async def publish(partial: Path, target: Path) -> None:
    """Give a finished file its owner and mode, sync it, and rename it to
    `target` (then sync the folder), so `target` appears complete or not at all."""
    await asyncio.to_thread(_publish, partial, target)


def _publish(partial: Path, target: Path) -> None:
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(QEMU_USER)
        except KeyError:
            raise DiskError(f"user {QEMU_USER} does not exist; is libvirt installed?") from None
    try:
        partial.chmod(FILE_MODE)
        if owner:
            os.chown(partial, owner.pw_uid, owner.pw_gid)
        _fsync(partial, os.O_RDONLY)
        partial.rename(target)
        _fsync(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise DiskError(f"cannot put {target} in place: {error}") from error


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(path: Path) -> None:
    """Remove a partial file if there is one."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def absolute(path: Path) -> str:
    """`path` made absolute, as a tool argument: qemu-img reads a name with a
    colon before any slash as a protocol ("nbd:...", "json:{...}") and
    genisoimage and qemu-img one starting with "-" as an option."""
    return str(path if path.is_absolute() else Path.cwd() / path)


async def virtual_size(path: Path, fmt: str | None = None) -> int:
    """The virtual size of a disk image in bytes, from `qemu-img info
    --output=json`. Give `fmt` when known rather than letting qemu-img probe
    it; `--force-share` lets this read a disk a running domain holds."""
    argv = ["qemu-img", "info", "--output=json", "--force-share"]
    if fmt:
        argv += ["-f", fmt]
    info = json.loads(await run_tool(*argv, absolute(path)))
    return int(info["virtual-size"])


async def overlay(base: Path, base_fmt: str, target: Path, size_gib: int | None) -> None:
    """A qcow2 copy-on-write overlay of `base` (format `base_fmt`) at `target`.

    The overlay records the base's resolved absolute path and its format. It
    has the base's virtual size, grown to `size_gib` GiB when that is larger.
    A `size_gib` smaller than the base is a DiskError, never a shrink (which
    would cut the guest's filesystem) nor a silent larger disk (which would
    exceed what was asked and reserved). No-op when `target` exists."""
    if await asyncio.to_thread(target.exists):
        return
    base_bytes = await virtual_size(base, base_fmt)
    if size_gib is not None and size_gib * _GIB < base_bytes:
        raise DiskError(
            f"a disk of {size_gib} GiB is smaller than its base image {base} ({base_bytes} bytes)"
        )
    partial = partial_path(target)
    resolved = await asyncio.to_thread(base.resolve)
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", base_fmt, "-b", str(resolved)]
    argv.append(absolute(partial))
    if size_gib is not None:
        argv.append(str(size_gib * _GIB))
    await _make(partial, target, argv)


async def blank(target: Path, size_gib: int) -> None:
    """An empty qcow2 disk of `size_gib` GiB at `target`. No-op when `target` exists."""
    if size_gib < 1:
        raise ValueError(f"disk size must be at least 1 GiB, not {size_gib}")
    if await asyncio.to_thread(target.exists):
        return
    partial = partial_path(target)
    await _make(
        partial,
        target,
        ["qemu-img", "create", "-q", "-f", "qcow2", absolute(partial), str(size_gib * _GIB)],
    )


async def _make(partial: Path, target: Path, argv: list[str]) -> None:
    """Run the command that writes `partial`, then publish it as `target`;
    on any failure leave neither behind."""
    try:
        await run_tool(*argv)
        await publish(partial, target)
    except BaseException:
        discard(partial)
        raise
