"""Several replicas of one service behind one channel: the gateway's api
replicas (`--api-address`), every client's eventlog replicas (`--eventlog`).

Given one address, the channel is a plain channel to it. Given several
(`a:p,b:p`), the channel's target lists them all and gRPC balances calls
round robin over the replicas it is connected to, with client-side health
checks: a replica whose `grpc.health.v1` status is not SERVING (one that is
stopping: `serve()` says so before it drains) or whose connection dropped
takes no new call, and comes back into the rotation once it serves again.
Each call picks a replica when it starts, so a long-lived stream stays on
its replica; a stream broken by its replica's loss is opened again by its
caller and lands on another. A call in flight on a replica that dies fails
(UNAVAILABLE) and is not repeated here: only its caller knows whether a
repeat is safe.

gRPC's `ipv4:`/`ipv6:` targets take literal addresses only, so several
replicas are named by address. With TLS, the channel's one target name
cannot match each replica's address, so it checks instead that every
replica's certificate names the role (`transport.role_name`), which the
`ca` command puts in each role's certificate.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

import grpc

from services.common.config import split_address
from services.common.transport import ChannelOptions, Transport, role_name

SERVICE_CONFIG = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)
"""Round robin over the replicas whose health service says SERVING."""


class ReplicaAddressError(ValueError):
    """Replicas named in a way one channel cannot reach."""


def parse_replicas(text: str, *, role: str) -> tuple[str, ...]:
    """The replicas of `role` that `text` names: one `host:port`, or several
    comma-separated `address:port`, each a literal IP address. Raises
    ReplicaAddressError naming the culprit."""
    addresses = tuple(part.strip() for part in text.split(",") if part.strip())
    if not addresses:
        raise ReplicaAddressError(f"no {role} address")
    for n, address in enumerate(addresses):
        if address in addresses[:n]:
            raise ReplicaAddressError(f"{role} address {address!r} is listed twice")
        try:
            host, _ = split_address(address)
        except ValueError as exc:
            raise ReplicaAddressError(f"{address!r}: {exc}") from None
        if len(addresses) > 1 and not _literal(host):
            raise ReplicaAddressError(
                f"{address!r}: several {role} replicas are named by IP address, not by name"
            )
    return addresses


def target(addresses: Sequence[str]) -> str:
    """The channel target reaching every replica in `addresses`."""
    if len(addresses) == 1:
        return addresses[0]
    version = {_family(split_address(a)[0]) for a in addresses}
    if len(version) != 1:
        raise ReplicaAddressError("replicas mix IPv4 and IPv6 addresses")
    return f"{version.pop()}:{','.join(addresses)}"


def options(addresses: Sequence[str], *, tls_name: str | None) -> list[tuple[str, str]]:
    """The channel options for `addresses`: balancing and health checks when
    there are several, and then with TLS the name every replica's
    certificate carries (`tls_name`)."""
    if len(addresses) == 1:
        return []
    chosen = [("grpc.service_config", SERVICE_CONFIG)]
    if tls_name is not None:
        chosen.append(("grpc.ssl_target_name_override", tls_name))
    return chosen


def replica_channel(
    transport: Transport,
    text: str,
    *,
    role: str,
    extra: ChannelOptions = (),
    traced: bool = True,
) -> grpc.aio.Channel:
    """One channel to every replica of `role` that `text` names
    (`parse_replicas`), with the options `extra` besides; see
    `Transport.channel` for `traced`. Raises ReplicaAddressError."""
    addresses = parse_replicas(text, role=role)
    tls_name = role_name(role) if transport.secure else None
    chosen = [*extra, *options(addresses, tls_name=tls_name)]
    return transport.channel(target(addresses), chosen, traced=traced)


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _family(host: str) -> str:
    return "ipv6" if ipaddress.ip_address(host.strip("[]")).version == 6 else "ipv4"
