"""The gateway's HTTPS: the TLS its listening socket speaks to REST clients.

Clients are users, who prove themselves by token, so no client certificate
is asked. HTTP/1.1 only (ALPN), TLS 1.2 or later with forward-secret AEAD
suites. A handshake costs once per connection: clients that keep their
connection alive pay only the record encryption per request, and TLS 1.3
session tickets let a returning client skip the full handshake.
"""

from __future__ import annotations

import ssl

from services.common.transport import TlsConfigError, TlsFiles

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""TLS 1.2 suites allowed (1.3's are all AEAD and forward-secret already)."""


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    """A server context presenting this host's gateway certificate;
    TlsConfigError when the certificate or key cannot be used."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(tls.cert_path, tls.key_path)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(
            f"--tls-cert {tls.cert_path} / --tls-key {tls.key_path}: {exc}"
        ) from exc
    return context
