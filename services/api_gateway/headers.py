"""Request-header helpers: read the ASGI headers, check metadata, parse timeouts. Pure.

gRPC metadata takes printable ASCII only, so `metadata_safe` guards what the
gateway forwards; `grpc_timeout` reads a `Grpc-Timeout` header; answers to a
request with an `Origin` carry `CORS_HEADERS`.
"""

from __future__ import annotations

import re
from typing import Any

from services.api_gateway.errors import GatewayError
from services.api_gateway.responses import Headers
from services.api_gateway.types import Scope

_GRPC_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
CORS_HEADERS: Headers = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"x-request-id, retry-after"),
]


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name; repeated ones joined with ", "."""
    found: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        found[name] = f"{found[name]}, {value}" if name in found else value
    return found


_FORWARDED = frozenset({"accept-ranges", "content-range", "content-disposition", "last-modified"})
STATUS_KEY = "x-http-code"
"""Initial metadata that sets a successful answer's status, as grpc-gateway's recipe."""


def response_head(metadata: Any) -> tuple[int, Headers]:
    """The status and extra headers a stream's initial metadata asks for:
    `x-http-code` (a 2xx status; anything else is ignored) and the headers
    `accept-ranges`, `content-range`, `content-disposition`, `last-modified`."""
    status = 200
    headers: Headers = []
    for key, value in metadata or ():
        if not isinstance(value, str):
            continue
        if key == STATUS_KEY and value.isascii() and value.isdigit() and len(value) == 3:
            if 200 <= int(value) < 300:
                status = int(value)
        elif key in _FORWARDED and metadata_safe(value):
            headers.append((key.encode("latin-1"), value.encode("latin-1")))
    return status, headers


def metadata_safe(value: str) -> bool:
    """Whether gRPC accepts `value` as an ASCII metadata value."""
    return value.isascii() and value.isprintable()


def grpc_timeout(value: str | None) -> float | None:
    """Parse a `Grpc-Timeout` header (e.g. "5S", "100m") into seconds."""
    if value is None:
        return None
    match = _GRPC_TIMEOUT.match(value.strip())
    if match is None:
        raise GatewayError(400, f"bad Grpc-Timeout header {value!r}")
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]
