"""Prometheus metrics: a process's `/metrics` endpoint and its request series.

Every series of a process lives in prometheus_client's default `REGISTRY`,
beside its own `process_*` and `python_*` collectors. `serve_metrics(listen)`
serves that registry at `http://<listen>/metrics` from prometheus_client's
own WSGI server, in a daemon thread: a scrape never waits on the event loop,
and the thread ends with the process. With `listen` "" nothing is served and
`enabled()` stays False: the request paths are then given no
`RequestMetrics` and record nothing, so metrics cost nothing when off (and
`bench/metrics.py` can compare on with off).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

from services.common.settings import Setting

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Request duration buckets, seconds: 1 ms to 10 s."""

_enabled = False


def metrics_setting(service: str) -> Setting:
    """`--metrics-listen` of `service` (`SFMESH_<SERVICE>_METRICS_LISTEN`):
    off unless given (the launcher gives each role its port)."""
    return Setting(
        "--metrics-listen",
        "",
        "host:port serving Prometheus metrics at /metrics; empty for none (nothing recorded)",
        variable=f"{service.upper()}_METRICS_LISTEN",
    )


def serve_metrics(listen: str) -> int | None:
    """Serve the default registry at `listen` (host:port, IPv6 in brackets,
    no host for loopback; port 0 picks one) and turn recording on. Answers
    the port bound, or None for `listen` "" (off); exits with a message when
    it cannot listen there."""
    global _enabled
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    try:
        server, _ = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1")
    except (OSError, OverflowError, ValueError) as exc:
        raise SystemExit(f"sfmesh: --metrics-listen {listen}: cannot listen there: {exc}") from None
    _enabled = True
    return int(server.server_port)


def enabled() -> bool:
    """Whether this process serves metrics, so its request paths record them."""
    return _enabled


class RequestMetrics:
    """Two series of one kind of request: `<prefix>_requests_total` by the
    request's labels and its outcome `code`, and
    `<prefix>_request_duration_seconds` by the request's labels."""

    def __init__(
        self,
        prefix: str,
        labels: tuple[str, ...],
        *,
        what: str,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        """`what` names the requests in the series' help, e.g. "gRPC requests"."""
        self._total = Counter(
            f"{prefix}_requests", f"{what} served, by outcome", (*labels, "code"), registry=registry
        )
        self._duration = Histogram(
            f"{prefix}_request_duration_seconds",
            f"seconds to serve {what}",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, ...], tuple[Counter, Histogram]] = {}

    def observe(self, labels: tuple[str, ...], code: str, seconds: float) -> None:
        """Count one request with `labels` that ended with `code` after
        `seconds`. Each label set's children are looked up once."""
        key = (*labels, code)
        children = self._children.get(key)
        if children is None:
            children = self._total.labels(*key), self._duration.labels(*labels)
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
