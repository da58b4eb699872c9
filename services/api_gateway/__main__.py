"""`python -m services.api_gateway`: flags and SFMESH_* variables -> GatewayConfig -> serve."""

from __future__ import annotations

import argparse
import logging

import uvloop

from services.api_gateway.config import GatewayConfig
from services.api_gateway.server import serve
from services.common.logs import skip_unshown_lookups
from services.common.metrics import metrics_setting, serve_metrics
from services.common.replicas import ReplicaAddressError, parse_replicas
from services.common.settings import Setting, add_settings
from services.common.tracing import OTLP_ENDPOINT, configure_tracing
from services.common.transport import TLS_SETTINGS, TlsConfigError, Transport

C = GatewayConfig
SETTINGS = (
    Setting(
        "--api-address",
        C.api_address,
        "the upstream api's gRPC address, or several replicas' IP:port, comma-separated",
    ),
    Setting("--host", C.host, "the address to listen on", variable="GATEWAY_HOST"),
    Setting("--port", C.port, "the port to listen on; 0 picks a free one", int, "GATEWAY_PORT"),
    Setting(
        "--max-body", C.max_body, "the largest request body, bytes; larger is 413", int,
        "GATEWAY_MAX_BODY",
    ),
    Setting(
        "--max-upload", C.max_upload, "the largest raw body streamed to an upload, bytes", int,
        "GATEWAY_MAX_UPLOAD",
    ),
    Setting(
        "--deadline", C.deadline, "seconds a unary upstream call may take", float,
        "GATEWAY_DEADLINE",
    ),
    Setting(
        "--head-timeout", C.head_timeout, "seconds a client has to send a request's head",
        float, "GATEWAY_HEAD_TIMEOUT",
    ),
    Setting(
        "--body-timeout", C.body_timeout, "seconds, in all, to wait for one request's body",
        float, "GATEWAY_BODY_TIMEOUT",
    ),
    Setting(
        "--max-connections", C.max_connections, "open client connections at most", int,
        "GATEWAY_MAX_CONNECTIONS",
    ),
    Setting(
        "--novnc-dir", C.novnc_dir, "where noVNC is, for the browser console's page",
        variable="GATEWAY_NOVNC_DIR",
    ),
    OTLP_ENDPOINT,
)  # fmt: skip


def parse_config(argv: list[str] | None = None) -> GatewayConfig:
    """Flags override environment variables, which override defaults. With
    the TLS files the gateway serves HTTPS and checks the api's certificate."""
    parser = argparse.ArgumentParser(prog="python -m services.api_gateway", description=__doc__)
    add_settings(parser, (*SETTINGS, *TLS_SETTINGS, metrics_setting("gateway")))
    args = parser.parse_args(argv)
    try:
        transport = Transport.from_settings(args.tls_ca, args.tls_cert, args.tls_key)
    except TlsConfigError as exc:
        parser.error(str(exc))
    try:
        parse_replicas(args.api_address, role="api")
    except ReplicaAddressError as exc:
        parser.error(f"--api-address: {exc}")
    return GatewayConfig(
        api_address=args.api_address,
        transport=transport,
        host=args.host,
        port=args.port,
        max_body=args.max_body,
        max_upload=args.max_upload,
        deadline=args.deadline,
        head_timeout=args.head_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        novnc_dir=args.novnc_dir,
        otlp_endpoint=args.otlp_endpoint,
        metrics_listen=args.metrics_listen,
    )


def main() -> None:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    skip_unshown_lookups()
    config = parse_config()
    configure_tracing("gateway", config.otlp_endpoint)
    serve_metrics(config.metrics_listen)
    # uvloop: measured faster than asyncio's loop for the gateway (bench/gateway.py).
    uvloop.run(serve(config))


if __name__ == "__main__":
    main()
