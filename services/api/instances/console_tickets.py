"""Browser console tickets: what one says, how it is signed and checked. Pure.

A ticket is a JWT (HS256, audience `sfmesh-console`) signed with a secret
of its own that every api replica shares (`token_secret.py`, at
`/sfmesh/v1/secret/console-tickets` in etcd): a ticket is never a user
token, nor a user token a ticket. It says which instance it opens (`sub`),
who asked (the namespace, key name and key nonce of the caller's token, so
a key deleted or rotated since revokes it, as it revokes the token), when
it expires (`exp`, in seconds with a fraction: checked here, not by PyJWT,
which rounds) and its id (`jti`), which makes it open one session only
(`browser_console.py` claims the id in etcd). It names no node, address or
port: whoever holds it learns nothing of where the console is.

The page's URL carries the ticket in its fragment (`#instance=...&ticket=...`),
which browsers never send to a server, so no access log holds it; the
WebSocket that the page opens carries it in its query (the gateway's access
log records paths without queries).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import jwt

from services.common import errors

AUDIENCE = "sfmesh-console"
DEFAULT_TTL = 300
"""Seconds a ticket lives by default: the time to open the page, and the
longest the session it opens lasts."""
PAGE = "/console/"


@dataclass(frozen=True)
class Ticket:
    """What a console ticket says."""

    instance: str
    """The UUID of the instance whose console it opens."""
    namespace: str
    """The namespace of the caller that asked for it."""
    key_name: str
    """The key of that caller's token."""
    nonce: str
    """That key's nonce when the token was made."""
    expires_at: float
    """Epoch seconds after which it opens nothing, and its session ends."""
    ticket_id: str
    """Unique: a ticket opens one session."""


def new_ticket(
    instance: str, *, namespace: str, key_name: str, nonce: str, now: float, ttl: int
) -> Ticket:
    """A ticket for `instance` asked by that caller at `now`, living `ttl` s."""
    return Ticket(instance, namespace, key_name, nonce, now + ttl, str(uuid.uuid4()))


def sign(ticket: Ticket, secret: str) -> str:
    """The ticket as a signed JWT."""
    claims = {
        "aud": AUDIENCE,
        "sub": ticket.instance,
        "ns": ticket.namespace,
        "key": ticket.key_name,
        "nonce": ticket.nonce,
        "exp": ticket.expires_at,
        "jti": ticket.ticket_id,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify(token: str, secret: str, *, instance: str, now: float) -> Ticket:
    """The ticket `token` is, when its signature holds, it has not expired at
    `now` and it opens `instance`; else Unauthenticated (401)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            options={"verify_exp": False, "require": ["exp", "sub", "jti"]},
        )
        ticket = Ticket(
            instance=str(claims["sub"]),
            namespace=str(claims["ns"]),
            key_name=str(claims["key"]),
            nonce=str(claims.get("nonce", "")),
            expires_at=float(claims["exp"]),
            ticket_id=str(claims["jti"]),
        )
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError) as exc:
        raise errors.Unauthenticated("invalid console ticket", reason="TICKET_INVALID") from exc
    if now >= ticket.expires_at:
        raise errors.Unauthenticated("console ticket expired", reason="TICKET_EXPIRED")
    if ticket.instance != instance:
        raise errors.Unauthenticated(
            "console ticket is for another instance", reason="TICKET_INVALID"
        )
    return ticket


def lifetime(asked: int | None, most: int) -> int:
    """The seconds a new ticket lives: `asked`, 1 to `most`, or `most`. Pure."""
    if asked is None:
        return most
    if not 1 <= asked <= most:
        raise errors.InvalidArgument(f"ttl must be 1 to {most} seconds")
    return asked


def page_url(instance: str, token: str) -> str:
    """The console page's URL for a ticket, relative to the gateway. Pure."""
    return f"{PAGE}#instance={instance}&ticket={token}"
