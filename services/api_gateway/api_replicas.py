"""Several api replicas behind one gateway channel.

The gateway keeps one upstream channel. Given one address, it is a plain
channel to that api. Given several (`--api-address a:p,b:p`), the channel's
target lists them all and gRPC balances calls round robin over the replicas
it is connected to, with client-side health checks: a replica whose
`grpc.health.v1` status is not SERVING (one that is stopping: `serve()`
says so before it drains) or whose connection dropped takes no new call, and
comes back into the rotation once it serves again. A call in flight on a
replica that dies fails (503), and is not repeated by the gateway, which
cannot know whether it applied; a client that retries it gets a healthy
replica (and `Idempotency-Key` makes a repeated create safe).

gRPC's `ipv4:`/`ipv6:` targets take literal addresses only, so several
replicas are named by address. With TLS, the channel's one target name
cannot match each replica's address, so it checks instead that every
replica's certificate names the api role (`transport.role_name`), which the
`ca` command puts in each role's certificate.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

from services.common.config import split_address

SERVICE_CONFIG = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)
"""Round robin over the replicas whose health service says SERVING."""


class ReplicaAddressError(ValueError):
    """Replicas named in a way one channel cannot reach."""


def parse_replicas(text: str) -> tuple[str, ...]:
    """`--api-address`: one `host:port`, or several comma-separated
    `address:port`, each a literal IP address. Raises ReplicaAddressError."""
    addresses = tuple(part.strip() for part in text.split(",") if part.strip())
    if not addresses:
        raise ReplicaAddressError("no api address")
    if len(addresses) != len(set(addresses)):
        raise ReplicaAddressError(f"an api address is listed twice in {text!r}")
    for address in addresses:
        try:
            host, _ = split_address(address)
        except ValueError as exc:
            raise ReplicaAddressError(f"{address!r}: {exc}") from None
        if len(addresses) > 1 and not _literal(host):
            raise ReplicaAddressError(
                f"{address!r}: several api replicas are named by IP address, not by name"
            )
    return addresses


def target(addresses: Sequence[str]) -> str:
    """The channel target reaching every replica in `addresses`."""
    if len(addresses) == 1:
        return addresses[0]
    version = {_family(split_address(a)[0]) for a in addresses}
    if len(version) != 1:
        raise ReplicaAddressError("api replicas mix IPv4 and IPv6 addresses")
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


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _family(host: str) -> str:
    return "ipv6" if ipaddress.ip_address(host.strip("[]")).version == 6 else "ipv4"
