"""How the multi-host tests' REST clients retry: once, at another gateway,
after a 503 or a failed connection, with the same `Idempotency-Key`. A
connection refused is retried at once (that gateway is down; another is
not). Otherwise they first wait what the 503's `Retry-After` says (at most
`RETRY_AFTER_MAX`; every 503 of the gateway carries one), or
`RECONNECT_PAUSE` after a connection lost mid-request: an immediate retry
would run into what just broke the first attempt (a gateway still picking
the api replica that died, or etcd electing a leader), which takes about a
second to pass."""

from __future__ import annotations

import time

import httpx

RETRY_AFTER_MAX = 2.0
RECONNECT_PAUSE = 1.0


def pause_before_retry(failed: httpx.Response | httpx.TransportError) -> None:
    """Wait before retrying after `failed`: a 503, or a connection's error."""
    if isinstance(failed, httpx.Response):
        time.sleep(min(float(failed.headers.get("Retry-After", 0)), RETRY_AFTER_MAX))
    elif not isinstance(failed, httpx.ConnectError):
        time.sleep(RECONNECT_PAUSE)
