"""Which etcd member leads, and moving the lead, through etcd's own JSON
gateway (`/v3/maintenance/status`, `/v3/maintenance/transfer-leadership`)
over https with a client certificate of the mesh CA (`client`, from
`launcher.tls.client_context`): a test that loses a host can make it the
leader first, so that the loss always costs the cluster an election."""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import httpx


def status(endpoint: str, client: ssl.SSLContext) -> tuple[str, str]:
    """(this member's id, the leader's id) as the member at `endpoint` says."""
    reply = httpx.post(
        f"https://{endpoint}/v3/maintenance/status", json={}, timeout=5, verify=client
    )
    reply.raise_for_status()
    found = reply.json()
    return str(found["header"]["member_id"]), str(found["leader"])


def leader(endpoints: Sequence[str], client: ssl.SSLContext) -> str | None:
    """The client endpoint of the member that leads, of `endpoints` (every
    member's); None while they do not all name the same one."""
    views = {endpoint: status(endpoint, client) for endpoint in endpoints}
    leads = {lead for _, lead in views.values()}
    if len(leads) != 1:
        return None
    return next((endpoint for endpoint, (own, _) in views.items() if own in leads), None)


def move_leader(endpoints: Sequence[str], to: str, client: ssl.SSLContext) -> None:
    """Make the member at `to` (one of `endpoints`) the leader; the lead
    moves once the answer comes."""
    current = leader(endpoints, client)
    if current is None:
        raise RuntimeError(f"no leader all of {', '.join(endpoints)} agree on")
    if current == to:
        return
    target, _ = status(to, client)
    reply = httpx.post(
        f"https://{current}/v3/maintenance/transfer-leadership",
        json={"targetID": target},
        timeout=10,
        verify=client,
    )
    reply.raise_for_status()
