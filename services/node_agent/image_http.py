"""GET an image URL under the fetch policy (blocking).

Each hop's host is resolved once; every address it gave is judged by
``fetch_policy.refusal`` and the connection goes to one that passed, while
the Host header and TLS (SNI and the certificate check) keep the URL's name.
So no second DNS answer can slip between check and connect. Redirects are
followed here, at most ``MAX_REDIRECTS``, each hop checked the same way and
only over http(s). No proxy is used: a proxy would be the one connecting.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import urllib.parse
from collections.abc import Iterator, Mapping
from ipaddress import ip_address
from typing import Any

from services.node_agent.fetch_policy import SCHEMES, FetchPolicy, refusal, unwrap
from services.node_agent.mesh_endpoints import on_this_host

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Refused(Exception):
    """The policy refuses a hop; the message says which rule."""


class FetchFailed(Exception):
    """A hop answered with neither success nor a redirect to follow."""


@contextlib.contextmanager
def open_image(
    url: str, policy: FetchPolicy, *, timeout: float, headers: Mapping[str, str]
) -> Iterator[http.client.HTTPResponse]:
    """The 2xx answer to GET ``url``, redirects followed; closed on exit.
    ``timeout`` bounds the connection and each read, in seconds. Raises
    Refused, FetchFailed, OSError or http.client.HTTPException."""
    hop = url
    for _ in range(MAX_REDIRECTS + 1):
        via = f"redirected to {hop}: " if hop != url else ""
        connection = _connect(hop, policy, timeout, via)
        try:
            connection.request("GET", _target(hop), headers={**headers, "Connection": "close"})
            with connection.getresponse() as response:
                if 200 <= response.status < 300:
                    yield response
                    return
                location = response.getheader("Location")
                if response.status not in _REDIRECTS or not location:
                    raise FetchFailed(f"{via}HTTP {response.status} {response.reason}")
        finally:
            connection.close()
        hop = urllib.parse.urljoin(hop, location)
    raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")


def _connect(url: str, policy: FetchPolicy, timeout: float, via: str) -> http.client.HTTPConnection:
    """A connection for ``url`` whose socket is already connected to an
    address of its host that the policy lets through."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise Refused(f"{via}only http(s) URLs with a host are fetched")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    allowed: list[tuple[socket.AddressFamily, Any]] = []
    reasons: list[str] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(
        parts.hostname, port, type=socket.SOCK_STREAM
    ):
        address = ip_address(sockaddr[0])
        reason = refusal(policy, address, port, local=on_this_host(unwrap(address)))
        if reason is None:
            allowed.append((family, sockaddr))
        else:
            reasons.append(reason)
    if not allowed:
        raise Refused(f"{via}{reasons[0]}")
    sock = _first_answering(allowed, timeout)
    connection: http.client.HTTPConnection
    if tls:
        try:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        except OSError:
            sock.close()
            raise
        connection = http.client.HTTPSConnection(parts.hostname, port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    connection.sock = sock  # connected already: request() does not connect again
    return connection


def _first_answering(
    addresses: list[tuple[socket.AddressFamily, Any]], timeout: float
) -> socket.socket:
    """A socket connected to the first of ``addresses`` that accepts; the
    last one's error when none does."""
    *others, (family, sockaddr) = addresses
    for other_family, other in others:
        with contextlib.suppress(OSError):
            return _connected(other_family, other, timeout)
    return _connected(family, sockaddr, timeout)


def _connected(family: socket.AddressFamily, sockaddr: Any, timeout: float) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


def _target(url: str) -> str:
    """The request target of ``url``: its path and query."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path or '/'}{'?' + parts.query if parts.query else ''}"
