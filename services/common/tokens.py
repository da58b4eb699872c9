"""Bearer tokens: user tokens from POST /auth, and the internal identity that
services carry when they call each other in plaintext mode. Both are HS256
JWTs told apart by audience, so one can never pass for the other. With TLS a
service's internal identity is its certificate (`transport.py`) and no
internal token exists."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from services.common import errors

USER_AUDIENCE = "sfmesh"
INTERNAL_AUDIENCE = "sfmesh-internal"
VERIFIED_CACHE_SIZE = 4096
"""How many verified tokens a TokenAuthority remembers (oldest forgotten first)."""

Metadata = tuple[tuple[str, str], ...]
"""gRPC metadata sent with a call."""
Credentials = Callable[[], Metadata]
"""What a service sends with each internal call: `InternalCredentials.metadata`."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, as proven by a token or, with TLS, a mesh certificate."""

    namespace: str
    """The namespace authenticated as; "system" for the internal identity."""
    key_name: str
    """The key the token came from; the service name for the internal identity."""
    nonce: str
    """The key's nonce when the token was made."""
    internal: bool = False
    """Whether this is a service of the mesh."""
    host: str = ""
    """The host of a service proven by its certificate; "" otherwise."""


class TokenAuthority:
    """Issues and verifies tokens.

    User tokens are signed with the JWT secret, which only the api holds;
    internal ones with the service key, which every service holds in
    plaintext mode; with TLS there is none (`internal_secret=None`).
    """

    def __init__(
        self,
        *,
        internal_secret: str | None,
        user_secret: str | None = None,
        ttl_seconds: int = 900,
    ) -> None:
        self._secrets = {INTERNAL_AUDIENCE: internal_secret, USER_AUDIENCE: user_secret}
        self.ttl_seconds = ttl_seconds
        self._verified: dict[tuple[str, bool], tuple[Caller, float]] = {}

    @property
    def signs_internal(self) -> bool:
        """Whether this authority issues internal tokens (plaintext mode)."""
        return self._secrets[INTERNAL_AUDIENCE] is not None

    def issue_user(self, namespace: str, key_name: str, nonce: str) -> str:
        """A user token for one namespace key."""
        return self._issue(USER_AUDIENCE, namespace, key_name, nonce)

    def issue_internal(self, service: str) -> str:
        """A token carrying the internal identity of `service`."""
        return self._issue(INTERNAL_AUDIENCE, "system", service, "")

    def verify(self, token: str, *, internal: bool) -> Caller:
        """Check signature, expiry and audience; raise Unauthenticated otherwise.

        A token's signature and claims cannot change, so one verified is
        remembered until it expires and only the clock is read again (a JWT
        check costs about 0.1 ms, on every RPC). Refusals are not remembered.
        Revocation is the caller's check, made on every RPC all the same.
        """
        known = self._verified.get((token, internal))
        if known is not None:
            if time.time() < known[1]:
                return known[0]
            del self._verified[(token, internal)]
        who, expires = self._decode(token, internal)
        if expires is not None:
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                del self._verified[next(iter(self._verified))]
            self._verified[(token, internal)] = (who, expires)
        return who

    def _decode(self, token: str, internal: bool) -> tuple[Caller, float | None]:
        """The caller a token proves, and its expiry when it has one."""
        audience = INTERNAL_AUDIENCE if internal else USER_AUDIENCE
        secret = self._secrets[audience]
        if secret is None and internal:
            raise errors.Unauthenticated(
                "internal callers prove themselves by certificate here", reason="NO_INTERNAL_TOKENS"
            )
        if secret is None:
            raise errors.Unauthenticated("this service takes no user tokens", reason="NO_USERS")
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"], audience=audience)
        except jwt.ExpiredSignatureError as exc:
            raise errors.Unauthenticated("Signature has expired", reason="TOKEN_EXPIRED") from exc
        except jwt.InvalidAudienceError as exc:
            kind = "an internal" if internal else "a user"
            raise errors.Unauthenticated(
                f"this call needs {kind} token", reason="WRONG_TOKEN_KIND"
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise errors.Unauthenticated(
                "invalid JWT in Authorization header", reason="TOKEN_INVALID"
            ) from exc
        who = Caller(
            namespace=claims["sub"],
            key_name=claims["key"],
            nonce=claims.get("nonce", ""),
            internal=internal,
        )
        expires = claims.get("exp")
        return who, None if expires is None else float(expires)

    def _issue(self, audience: str, namespace: str, key_name: str, nonce: str) -> str:
        secret = self._secrets[audience]
        if secret is None:
            kind = "user" if audience == USER_AUDIENCE else "internal"
            raise RuntimeError(f"this service holds no {kind} signing secret")
        now = int(time.time())
        claims = {
            "aud": audience,
            "sub": namespace,
            "key": key_name,
            "nonce": nonce,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, secret, algorithm="HS256")


class InternalCredentials:
    """The internal token a service presents when it calls another, re-issued
    a minute before it would expire; nothing with TLS, where the channel
    presents the service's certificate instead."""

    REFRESH_MARGIN = 60.0

    def __init__(self, authority: TokenAuthority, service: str) -> None:
        self._authority = authority
        self._service = service
        self._token = ""
        self._expires = 0.0

    def _current(self) -> str:
        """A valid internal token."""
        now = time.time()
        if now > self._expires - self.REFRESH_MARGIN:
            self._token = self._authority.issue_internal(self._service)
            self._expires = now + self._authority.ttl_seconds
        return self._token

    def metadata(self) -> Metadata:
        """gRPC metadata carrying the token; none when the authority signs
        no internal tokens (TLS)."""
        if not self._authority.signs_internal:
            return ()
        return (("authorization", f"Bearer {self._current()}"),)
