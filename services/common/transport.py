"""How a process of the mesh reaches others and is reached: mutual TLS from
the mesh CA when it has a certificate, plaintext otherwise (loopback
development, `make run`).

With TLS every service presents its own certificate, made by the `ca`
command (``launcher/ca.py``): its common name is `<service>@<host>`, and
that is the caller's identity on internal RPCs, replacing the shared
service key. A service with internal RPCs only (scheduler, eventlog, node
agent) requires a client certificate from the mesh CA: without one the
handshake fails and no RPC answers. The api serves users, whose identity is
their token, so it asks for no client certificate (`clients_prove=False`);
nothing internal is served there.

A peer is reached at the address it was configured with, and its
certificate must name that address (an IP or DNS subject alternative name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.common.settings import Setting
from services.common.tracing import channel_interceptors

TLS_SETTINGS = (
    Setting("--tls-ca", "", "the mesh CA's certificate (PEM); with the next two, TLS on"),
    Setting("--tls-cert", "", "this process's certificate (PEM), made by the ca command"),
    Setting("--tls-key", "", "the key of --tls-cert (PEM)"),
)
"""The flags naming this process's TLS files: all three, or none."""

ChannelOptions = Sequence[tuple[str, int | str]]

ROLE_DOMAIN = "sfmesh"
"""The pseudo-domain of the role names certificates carry (`role_name`)."""


def role_name(role: str) -> str:
    """The DNS name every certificate of `role` carries besides its host's
    names, e.g. `api.sfmesh`: what a client reaching any of several
    replicas through one channel checks (``replicas.py``)."""
    return f"{role}.{ROLE_DOMAIN}"


class TlsConfigError(ValueError):
    """The TLS files are not all given, or cannot be read."""


@dataclass(frozen=True)
class Identity:
    """Who is at the other end, as its certificate says."""

    service: str
    """The role of the process, e.g. `node_agent`."""
    host: str
    """The host it runs on, as the certificate names it."""

    @classmethod
    def parse(cls, common_name: str) -> Identity | None:
        """The identity in a certificate's common name `<service>@<host>`;
        None when it is not of that shape."""
        service, at, host = common_name.partition("@")
        if not at or not service or not host:
            return None
        return cls(service=service, host=host)

    @property
    def common_name(self) -> str:
        """The certificate common name carrying this identity."""
        return f"{self.service}@{self.host}"


@dataclass(frozen=True)
class TlsFiles:
    """The mesh CA certificate and this process's certificate and key, read,
    and where the last two came from (an HTTPS server loads them by path)."""

    ca: bytes
    cert: bytes
    key: bytes
    cert_path: Path
    key_path: Path

    @classmethod
    def load(cls, ca: Path, cert: Path, key: Path) -> TlsFiles:
        """Read the three PEM files; TlsConfigError naming one that cannot be."""
        return cls(
            ca=_read("--tls-ca", ca),
            cert=_read("--tls-cert", cert),
            key=_read("--tls-key", key),
            cert_path=cert,
            key_path=key,
        )


def _read(flag: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{flag} {path}: {exc.strerror}") from exc


@dataclass(frozen=True)
class Transport:
    """Makes this process's gRPC channels and listening ports, secure or not."""

    tls: TlsFiles | None = None
    """This process's TLS files; None for plaintext."""

    @classmethod
    def from_settings(cls, ca: str, cert: str, key: str) -> Transport:
        """From the values of `TLS_SETTINGS`: plaintext when none is set."""
        given = [bool(ca), bool(cert), bool(key)]
        if not any(given):
            return cls()
        if not all(given):
            raise TlsConfigError("--tls-ca, --tls-cert and --tls-key go together: give all three")
        return cls(TlsFiles.load(Path(ca), Path(cert), Path(key)))

    @property
    def secure(self) -> bool:
        """Whether this process speaks TLS."""
        return self.tls is not None

    def channel(
        self, address: str, options: ChannelOptions = (), *, traced: bool = True
    ) -> grpc.aio.Channel:
        """An asyncio channel to `address`, presenting this process's
        certificate; its calls carry the trace they are made in unless not
        `traced` (etcd's, and streams that serve no one request)."""
        interceptors = channel_interceptors() if traced else []
        if self.tls is None:
            return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
        credentials = self._channel_credentials()
        return grpc.aio.secure_channel(
            address, credentials, options=options, interceptors=interceptors
        )

    def blocking_channel(self, address: str, options: ChannelOptions = ()) -> grpc.Channel:
        """A blocking channel to `address` (health checks from plain code)."""
        if self.tls is None:
            return grpc.insecure_channel(address, options=options)
        return grpc.secure_channel(address, self._channel_credentials(), options=options)

    def listen(self, server: grpc.aio.Server, address: str, *, clients_prove: bool = True) -> int:
        """Add `address` to `server`; the port bound. With TLS, clients must
        present a certificate of the mesh CA unless `clients_prove` is False.
        RuntimeError when the address cannot be bound."""
        if self.tls is None:
            return server.add_insecure_port(address)
        credentials = grpc.ssl_server_credentials(
            [(self.tls.key, self.tls.cert)],
            root_certificates=self.tls.ca if clients_prove else None,
            require_client_auth=clients_prove,
        )
        return server.add_secure_port(address, credentials)

    def _channel_credentials(self) -> grpc.ChannelCredentials:
        assert self.tls is not None
        return grpc.ssl_channel_credentials(
            root_certificates=self.tls.ca,
            private_key=self.tls.key,
            certificate_chain=self.tls.cert,
        )


def peer_identity(context: grpc.aio.ServicerContext) -> Identity | None:
    """The identity in the verified certificate the caller presented; None
    on a plaintext connection or without a certificate."""
    names = context.auth_context().get("x509_common_name") or []
    if len(names) != 1:
        return None
    return Identity.parse(names[0].decode("utf-8", "replace"))
