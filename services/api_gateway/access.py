"""The end of one exchange, HTTP or WebSocket: its access-log line (method,
path, status, duration_ms, request_id) and, when the gateway serves metrics,
its count and duration.

The metrics' labels are bounded: `route` is the pattern of the route that
served the request (`/instances/{ref}`), which the app puts in the scope's
`"route"`, never the path itself; a request no route took (404, 405, the
gateway starting) is `unmatched`. `method` is one of the standard methods
or `OTHER`; `code` is the status sent, `0` when none was (the client left
first).
"""

from __future__ import annotations

import logging
import time

import orjson

from services.api_gateway.types import Scope
from services.common.metrics import RequestMetrics

access_log = logging.getLogger("sfmesh.api_gateway.access")

HTTP_REQUESTS = RequestMetrics("sfmesh_http", ("route", "method"), what="REST requests")
"""`sfmesh_http_requests_total{route,method,code}` and
`sfmesh_http_request_duration_seconds{route,method}`."""
ROUTE = "route"
"""The scope key where the app names the pattern of the route it took."""
UNMATCHED = "unmatched"
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))
"""Methods named as such in `method`; any other is `OTHER`."""


def route_labels(scope: Scope, method: str) -> tuple[str, str]:
    """The `route` and `method` labels of a finished request. Pure."""
    return scope.get(ROUTE, UNMATCHED), method if method in METHODS else "OTHER"


def finish(
    scope: Scope,
    *,
    status: int,
    started: float,
    request_id: str,
    metrics: RequestMetrics | None,
    websocket: bool = False,
) -> None:
    """Log one exchange that began at `started` (`time.perf_counter()`) and
    record it in `metrics`, if any."""
    seconds = time.perf_counter() - started
    method = "GET" if websocket else scope["method"]
    if access_log.isEnabledFor(logging.INFO):
        line = {
            "method": method,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "request_id": request_id,
        }
        if websocket:
            line["websocket"] = True
        access_log.info(orjson.dumps(line).decode())
    if metrics is not None:
        metrics.observe(route_labels(scope, method), str(status), seconds)
