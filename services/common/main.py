"""What every service's `__main__` shares: the common flags, logging, and the
token authority built from the secrets in the state folder."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from services.common.config import MESH_SETTINGS, MeshConfig
from services.common.events import EventEmitter
from services.common.logs import configure_logging
from services.common.metrics import metrics_setting, serve_metrics
from services.common.replicas import ReplicaAddressError, parse_replicas
from services.common.secrets import load_or_create_secret
from services.common.settings import Setting, add_settings
from services.common.tokens import InternalCredentials, TokenAuthority
from services.common.tracing import OTLP_ENDPOINT, configure_tracing
from services.common.transport import TLS_SETTINGS, Transport

LOG_LEVEL = Setting(
    "--log-level", "INFO", "the least level logged", choices=("DEBUG", "INFO", "WARNING", "ERROR")
)
"""The level every gRPC service logs from (the gateway logs at INFO)."""


def parse_arguments(
    service: str, *, listen: str, settings: tuple[Setting, ...] = ()
) -> argparse.Namespace:
    """Parse the shared flags, the TLS files, `--listen`, `--log-level`,
    `--otlp-endpoint`, `--metrics-listen` and `settings`, then configure
    logging and tracing for `service` and serve its metrics. Exits with a
    message when `--eventlog` names replicas no channel can reach, or when
    the metrics port cannot be bound."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    add_settings(
        parser,
        (
            *MESH_SETTINGS,
            *TLS_SETTINGS,
            Setting(
                "--listen", listen, "gRPC listen address", variable=f"{service.upper()}_LISTEN"
            ),
            LOG_LEVEL,
            OTLP_ENDPOINT,
            metrics_setting(service),
            *settings,
        ),
    )
    args = parser.parse_args()
    try:
        parse_replicas(args.eventlog, role="eventlog")
    except ReplicaAddressError as exc:
        parser.error(f"--eventlog: {exc}")
    configure_logging(service, args.log_level)
    configure_tracing(service, args.otlp_endpoint)
    serve_metrics(args.metrics_listen)
    return args


def service_authority(
    state_dir: Path,
    transport: Transport,
    *,
    user_secret: str | None = None,
    ttl_seconds: int = 900,
) -> TokenAuthority:
    """The token authority of a service: the service key in plaintext mode
    (with TLS, certificates prove services and the key is neither read nor
    made); the user-token secret only for the api, which reads it from etcd
    (``services/api/token_secret.py``)."""
    internal = None if transport.secure else load_or_create_secret(state_dir / "service.key")
    return TokenAuthority(
        internal_secret=internal, user_secret=user_secret, ttl_seconds=ttl_seconds
    )


def service_emitter(mesh: MeshConfig, service: str, authority: TokenAuthority) -> EventEmitter:
    """The event emitter of one service process on this host: a stable
    producer id, a spool folder of its own under the state folder, and the
    internal identity. Call `start()` on it inside the event loop."""
    fqdn = socket.getfqdn()
    producer = f"{service}@{fqdn}"
    return EventEmitter(
        address=mesh.eventlog,
        producer_id=producer,
        spool_dir=mesh.state_dir / "spool" / producer,
        fqdn=fqdn,
        credentials=InternalCredentials(authority, service).metadata,
        transport=mesh.transport,
    )
