"""Options for the gRPC channels services keep open to each other."""

from __future__ import annotations


def quick_reconnect(initial: float, maximum: float) -> tuple[tuple[str, int], ...]:
    """Channel options capping gRPC's own reconnect backoff (120 s by
    default) at the caller's, so a restarted peer is reached within
    `maximum` seconds rather than minutes."""
    return (
        ("grpc.initial_reconnect_backoff_ms", int(initial * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(initial * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(maximum * 1000)),
    )
