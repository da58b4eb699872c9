"""The few kernel commands the data plane runs, without a shell: `ip` and
`bridge` (iproute2), `nft` and `sysctl`. A failure raises DataPlaneError
naming the command and its stderr."""

from __future__ import annotations

import asyncio
import shlex


class DataPlaneError(Exception):
    """A command failed; the message holds the command and its stderr."""


async def run(*argv: str, stdin: str | None = None) -> str:
    """Run a command, feeding it `stdin` when given; its output."""
    code, stdout, stderr = await outcome(*argv, stdin=stdin)
    if code != 0:
        raise DataPlaneError(f"{shlex.join(argv)} failed (exit {code}): {stderr.strip()}")
    return stdout


async def outcome(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run a command whatever its exit status: (status, output, error output)."""
    try:
        child = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:  # not installed, say
        raise DataPlaneError(f"{shlex.join(argv)} cannot run: {exc}") from exc
    stdout, stderr = await child.communicate(stdin.encode() if stdin is not None else None)
    assert child.returncode is not None
    return child.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")


async def links_of_type(kind: str) -> list[str]:
    """The names of this namespace's interfaces of one kind (`vxlan`, ...)."""
    listing = await run("ip", "-o", "link", "show", "type", kind)
    return [line.split(": ")[1].split("@")[0] for line in listing.splitlines() if ": " in line]


async def link_exists(name: str, netns: str = "") -> bool:
    """Whether an interface `name` exists in `netns` ("": this process's)."""
    where = ("-n", netns) if netns else ()
    try:
        child = await asyncio.create_subprocess_exec(
            "ip", *where, "link", "show", "dev", name,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    except OSError as exc:
        raise DataPlaneError(f"ip cannot run: {exc}") from exc
    return await child.wait() == 0


async def delete_link(name: str, netns: str = "") -> None:
    """Delete interface `name` of `netns` ("": this process's) if it exists;
    a veth takes its peer along."""
    if await link_exists(name, netns):
        where = ("-n", netns) if netns else ()
        try:
            await run("ip", *where, "link", "delete", name)
        except DataPlaneError:
            if await link_exists(name, netns):  # not one a dying namespace took along
                raise
