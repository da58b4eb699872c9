"""GET an image URL under the fetch policy (blocking).

Each hop's host is resolved once; every address it gave is judged by
``fetch_policy.refusal`` and the connection goes to one that passed, while
the Host header and TLS (SNI and the certificate check) keep the URL's name.
So no second DNS answer can slip between check and connect. Redirects are
followed here, at most ``MAX_REDIRECTS``, each hop checked the same way and
only over http(s). No proxy is used: a proxy would be the one connecting.

One deadline holds from the first DNS lookup to the body's last byte: every
lookup, connect, TLS handshake and read waits at most the per-read timeout
and never past the deadline, so neither a slow resolver nor a server
dripping headers or body a byte at a time can hold a download for longer.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address
from typing import Any, cast

from services.node_agent.fetch_policy import SCHEMES, FetchPolicy, refusal, unwrap
from services.node_agent.mesh_endpoints import on_this_host

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RESOLVERS = ThreadPoolExecutor(4, thread_name_prefix="image-dns")
"""Where image hosts are looked up: getaddrinfo has no timeout of its own, so
a download waits for its answer only until its deadline, and a lookup that
outlives that ends here rather than on a download thread."""


class Refused(Exception):
    """The policy refuses a hop; the message says which rule."""


class FetchFailed(Exception):
    """A hop answered with neither success nor a redirect to follow."""


class Overdue(Exception):
    """The download's deadline passed."""


def _wait(read_timeout: float, deadline: float) -> float:
    """Seconds the next blocking step may take: the per-read timeout, cut
    to the time left before ``deadline`` (``time.monotonic()``). Raises
    Overdue once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise Overdue
    return min(read_timeout, left)


@contextlib.contextmanager
def _late(deadline: float) -> Iterator[None]:
    """A timeout raised in the block becomes Overdue when it came because
    the deadline passed."""
    try:
        yield
    except TimeoutError as error:
        if time.monotonic() >= deadline:
            raise Overdue from error
        raise


class _PacedSocket(socket.socket):
    """A socket whose every read waits at most ``_wait(read_timeout,
    deadline)``: http.client reads headers and body through ``recv_into``."""

    read_timeout: float = 30.0
    deadline: float = 0.0

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self.settimeout(_wait(self.read_timeout, self.deadline))
        with _late(self.deadline):
            return super().recv_into(*args, **kwargs)


class _PacedTLSSocket(_PacedSocket, ssl.SSLSocket):
    """The TLS socket ``_PacedSocket`` becomes when wrapped."""


@contextlib.contextmanager
def open_image(
    url: str,
    policy: FetchPolicy,
    *,
    timeout: float,
    deadline: float,
    headers: Mapping[str, str],
) -> Iterator[http.client.HTTPResponse]:
    """The 2xx answer to GET ``url``, redirects followed; closed on exit.
    ``timeout`` bounds the connection and each read, in seconds, and
    ``deadline`` (a ``time.monotonic()`` instant) all of it, reading the
    answer's body included. Raises Refused, FetchFailed, Overdue, OSError
    or http.client.HTTPException."""
    hop = url
    for _ in range(MAX_REDIRECTS + 1):
        via = f"redirected to {hop}: " if hop != url else ""
        connection = _connect(hop, policy, timeout, deadline, via)
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


def _connect(
    url: str, policy: FetchPolicy, timeout: float, deadline: float, via: str
) -> http.client.HTTPConnection:
    """A connection for ``url`` whose socket is already connected to an
    address of its host that the policy lets through, and paced."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise Refused(f"{via}only http(s) URLs with a host are fetched")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    allowed: list[tuple[socket.AddressFamily, Any]] = []
    reasons: list[str] = []
    for family, _, _, _, sockaddr in _resolve(parts.hostname, port, timeout, deadline):
        address = ip_address(sockaddr[0])
        reason = refusal(policy, address, port, local=on_this_host(unwrap(address)))
        if reason is None:
            allowed.append((family, sockaddr))
        else:
            reasons.append(reason)
    if not allowed:
        raise Refused(f"{via}{reasons[0]}")
    sock = _first_answering(allowed, timeout, deadline)
    connection: http.client.HTTPConnection
    if tls:
        sock = _with_tls(sock, parts.hostname)
        connection = http.client.HTTPSConnection(parts.hostname, port, timeout=timeout)
    else:
        connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    connection.sock = sock  # connected already: request() does not connect again
    return connection


def _resolve(host: str, port: int, timeout: float, deadline: float) -> list[Any]:
    """getaddrinfo's answer for ``host``, waited for at most the per-read
    timeout and never past the deadline (Overdue then)."""
    lookup = _RESOLVERS.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        with _late(deadline):
            return lookup.result(timeout=_wait(timeout, deadline))
    finally:
        lookup.cancel()  # one still queued behind slow lookups never starts


def _with_tls(sock: _PacedSocket, hostname: str) -> _PacedSocket:
    """``sock`` wrapped in TLS for ``hostname`` (SNI and the certificate
    check), paced as it was; closed if the handshake fails."""
    context = ssl.create_default_context()
    context.sslsocket_class = _PacedTLSSocket
    try:
        sock.settimeout(_wait(sock.read_timeout, sock.deadline))
        with _late(sock.deadline):
            wrapped = cast(_PacedTLSSocket, context.wrap_socket(sock, server_hostname=hostname))
    except (OSError, Overdue):
        sock.close()
        raise
    wrapped.read_timeout, wrapped.deadline = sock.read_timeout, sock.deadline
    return wrapped


def _first_answering(
    addresses: list[tuple[socket.AddressFamily, Any]], timeout: float, deadline: float
) -> _PacedSocket:
    """A socket connected to the first of ``addresses`` that accepts; the
    last one's error when none does."""
    *others, (family, sockaddr) = addresses
    for other_family, other in others:
        with contextlib.suppress(OSError):
            return _connected(other_family, other, timeout, deadline)
    return _connected(family, sockaddr, timeout, deadline)


def _connected(
    family: socket.AddressFamily, sockaddr: Any, timeout: float, deadline: float
) -> _PacedSocket:
    sock = _PacedSocket(family, socket.SOCK_STREAM)
    sock.read_timeout, sock.deadline = timeout, deadline
    try:
        sock.settimeout(_wait(timeout, deadline))
        with _late(deadline):
            sock.connect(sockaddr)
    except (OSError, Overdue):
        sock.close()
        raise
    return sock


def _target(url: str) -> str:
    """The request target of ``url``: its path and query."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path or '/'}{'?' + parts.query if parts.query else ''}"
