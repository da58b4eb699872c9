"""The side channels an instance may ask for in `side_channels`: the api
refuses any other name (reference §9 quirk 17: Shaken Fist [B] wrote the
strings into domain XML and file paths unchecked), and node agents give
each known one a virtio-serial port of that name, backed by a UNIX socket
`sc-<name>` in the instance's folder (reference §5.1).

`sf-agent2` (the vsock protocol of agent 1.x, §5.9) is not offered: this
machine's kernels have no vsock, so it cannot be tested here
(docs/compatibility.md)."""

from __future__ import annotations

AGENT = "sf-agent"
"""The channel the in-guest agent (protocol v1) speaks on."""
KNOWN = frozenset({AGENT})
"""Every name `side_channels` may hold."""
DEFAULT = (AGENT,)
"""What an instance created without `side_channels` gets."""


def socket_name(channel: str) -> str:
    """The file name of a channel's host socket in the instance's folder."""
    return f"sc-{channel}"
