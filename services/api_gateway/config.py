"""The gateway's settings, built once by `__main__` and passed down; their
flags and `SFMESH_*` variables are declared in `__main__`."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.transport import Transport


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway can be told."""

    api_address: str = "127.0.0.1:13010"
    """The upstream gRPC server, or several replicas' `IP:port`,
    comma-separated (``services/common/replicas.py``)."""
    transport: Transport = field(default_factory=Transport)
    """With TLS: the channel to the api checks its certificate against the
    mesh CA, and the gateway serves HTTPS with its own certificate."""
    host: str = "127.0.0.1"
    """The address to listen on."""
    port: int = 13000
    """The port to listen on; 0 picks a free one."""
    max_body: int = 1 << 20
    """The largest request body accepted, in bytes; larger is 413."""
    max_upload: int = 64 << 30
    """The largest raw body streamed into a client-streaming RPC (an upload),
    in bytes; larger is 413. Only one chunk of it is held at a time."""
    head_timeout: float = 10.0
    """Seconds a client has to send a request's head, from connecting or from the head's
    first byte on a kept-alive connection; then 408 and close."""
    body_timeout: float = 30.0
    """Seconds the gateway waits, in all, for one request's body;
    then 408 and close."""
    max_connections: int = 1000
    """Open client connections at most: one more closes the
    connection idle the longest. Lowered to fit the process's open-file limit."""
    deadline: float = 30.0
    """Deadline of unary upstream calls in seconds, unless the
    request sends `Grpc-Timeout`. Streams have none by default."""
    sse_ping: float = 15.0
    """Seconds of silence after which an SSE stream gets a `: ping` comment."""
    stream_start_wait: float = 1.0
    """How long a stream may stay silent before the 200 header is sent anyway; an error
    before then is answered with its own HTTP status, after it as a final error line."""
    metrics_listen: str = ""
    """host:port serving Prometheus metrics at `/metrics`; "" for none,
    and then no request is counted (``services/common/metrics.py``)."""
    novnc_dir: str = "/usr/share/novnc"
    """Where noVNC is (Debian's `novnc` package): its `core/` and `vendor/`
    are served at `/novnc/` for the browser console's page."""
    otlp_endpoint: str = ""
    """The OTLP collector the gateway's spans go to; "" for no tracing."""
