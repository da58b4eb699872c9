"""Options for the gRPC channels services keep open to each other.

gRPC reconnects a lost channel after a backoff (1 s, growing 1.6 times per
failed attempt up to 120 s, jittered by 20 %). Between attempts a call fails
at once with UNAVAILABLE (unless it asked `wait_for_ready`, when it waits for
the next attempt that succeeds), so a peer that restarts is only reached at
the channel's next attempt: with the defaults, seconds after it serves again.
Our channels attempt every quarter of a second at most instead; unary calls
still fail at once during an outage (an honest 503), while long-lived streams
that should outlast it open with `wait_for_ready`.
"""

from __future__ import annotations

RECONNECT_INITIAL = 0.1
"""Seconds before the first reconnect attempt (gRPC's floor is 0.1)."""
RECONNECT_MAX = 0.25
"""Most seconds between reconnect attempts: a restarted peer is reached
within about this of listening again."""


def quick_reconnect(
    initial: float = RECONNECT_INITIAL, maximum: float = RECONNECT_MAX
) -> tuple[tuple[str, int], ...]:
    """Channel options bounding gRPC's reconnect backoff by `initial` and
    `maximum` seconds. `grpc.min_reconnect_backoff_ms` is left alone: gRPC
    core reads it as the least time a connection attempt is given (20 s),
    not as a backoff, and a small one would cut slow handshakes short."""
    return (
        ("grpc.initial_reconnect_backoff_ms", int(initial * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(maximum * 1000)),
    )
