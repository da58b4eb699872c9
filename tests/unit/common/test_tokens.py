"""services/common/tokens.py: user and internal JWTs never pass for each other."""

from __future__ import annotations

import time

import jwt
import pytest

from services.common import errors
from services.common.tokens import (
    INTERNAL_AUDIENCE,
    USER_AUDIENCE,
    Caller,
    InternalCredentials,
    TokenAuthority,
)

INTERNAL_SECRET = "internal-" + "i" * 40
USER_SECRET = "user-" + "u" * 40


def authority(**overrides: object) -> TokenAuthority:
    settings: dict[str, object] = {"internal_secret": INTERNAL_SECRET, "user_secret": USER_SECRET}
    settings.update(overrides)
    return TokenAuthority(**settings)  # type: ignore[arg-type]


def test_user_token_round_trip() -> None:
    tokens = authority()
    caller = tokens.verify(tokens.issue_user("ns1", "key1", "nonce-1"), internal=False)
    assert caller == Caller(namespace="ns1", key_name="key1", nonce="nonce-1", internal=False)


def test_internal_token_round_trip() -> None:
    tokens = authority()
    caller = tokens.verify(tokens.issue_internal("scheduler"), internal=True)
    assert caller == Caller(namespace="system", key_name="scheduler", nonce="", internal=True)


def test_claims_audience_lifetime_and_unique_jti() -> None:
    tokens = authority(ttl_seconds=120)
    before = int(time.time())
    first = tokens.issue_user("ns1", "key1", "n")
    second = tokens.issue_user("ns1", "key1", "n")
    claims = jwt.decode(first, USER_SECRET, algorithms=["HS256"], audience=USER_AUDIENCE)
    assert claims["aud"] == USER_AUDIENCE
    assert claims["sub"] == "ns1"
    assert claims["key"] == "key1"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] == claims["iat"] + 120
    other = jwt.decode(second, USER_SECRET, algorithms=["HS256"], audience=USER_AUDIENCE)
    assert claims["jti"] != other["jti"]
    assert tokens.ttl_seconds == 120

    internal = jwt.decode(
        tokens.issue_internal("api"),
        INTERNAL_SECRET,
        algorithms=["HS256"],
        audience=INTERNAL_AUDIENCE,
    )
    assert internal["aud"] == INTERNAL_AUDIENCE
    assert internal["sub"] == "system"


def test_expired_token() -> None:
    expired = authority(ttl_seconds=-10)
    token = expired.issue_user("ns1", "key1", "n")
    with pytest.raises(errors.Unauthenticated) as caught:
        authority().verify(token, internal=False)
    assert caught.value.message == "Signature has expired"
    assert caught.value.reason == "TOKEN_EXPIRED"
    assert caught.value.http_status == 401


def test_expired_internal_token() -> None:
    token = authority(ttl_seconds=-10).issue_internal("api")
    with pytest.raises(errors.Unauthenticated, match=r"^Signature has expired$"):
        authority().verify(token, internal=True)


def test_user_token_refused_where_internal_required() -> None:
    tokens = authority()
    with pytest.raises(errors.Unauthenticated) as caught:
        tokens.verify(tokens.issue_user("system", "system", "n"), internal=True)
    # Signed with the other secret, so the signature already fails.
    assert caught.value.reason == "TOKEN_INVALID"
    assert caught.value.message == "invalid JWT in Authorization header"


def test_internal_token_refused_where_user_required() -> None:
    tokens = authority()
    with pytest.raises(errors.Unauthenticated) as caught:
        tokens.verify(tokens.issue_internal("node-agent"), internal=False)
    assert caught.value.reason == "TOKEN_INVALID"


@pytest.mark.parametrize("internal", [True, False])
def test_audience_alone_tells_kinds_apart(internal: bool) -> None:
    """Even with one secret for both, a token of one kind never passes for the other."""
    same = authority(internal_secret=USER_SECRET, user_secret=USER_SECRET)
    token = same.issue_user("ns", "k", "n") if internal else same.issue_internal("svc")
    with pytest.raises(errors.Unauthenticated) as caught:
        same.verify(token, internal=internal)
    assert caught.value.reason == "WRONG_TOKEN_KIND"
    kind = "an internal" if internal else "a user"
    assert caught.value.message == f"this call needs {kind} token"


def test_service_without_user_secret_refuses_user_tokens() -> None:
    api = authority()
    node_agent = TokenAuthority(internal_secret=INTERNAL_SECRET)
    with pytest.raises(errors.Unauthenticated) as caught:
        node_agent.verify(api.issue_user("ns1", "key1", "n"), internal=False)
    assert caught.value.reason == "NO_USERS"
    assert caught.value.message == "this service takes no user tokens"
    # It still verifies internal tokens from its peers.
    assert node_agent.verify(api.issue_internal("api"), internal=True).key_name == "api"


def test_service_without_user_secret_cannot_issue_user_tokens() -> None:
    with pytest.raises(RuntimeError, match="no user signing secret"):
        TokenAuthority(internal_secret=INTERNAL_SECRET).issue_user("ns1", "key1", "n")


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", jwt.encode({"aud": USER_AUDIENCE}, "x" * 40, algorithm="HS256")],
)
def test_garbage_and_foreign_signatures(token: str) -> None:
    with pytest.raises(errors.Unauthenticated) as caught:
        authority().verify(token, internal=False)
    assert caught.value.reason == "TOKEN_INVALID"
    assert caught.value.message == "invalid JWT in Authorization header"


def test_token_from_another_user_secret_refused() -> None:
    other = authority(user_secret="another-" + "z" * 40)
    with pytest.raises(errors.Unauthenticated, match="invalid JWT"):
        authority().verify(other.issue_user("ns1", "key1", "n"), internal=False)


def test_alg_none_refused() -> None:
    now = int(time.time())
    claims = {"aud": USER_AUDIENCE, "sub": "system", "key": "k", "iat": now, "exp": now + 60}
    token = jwt.encode(claims, "", algorithm="none")
    with pytest.raises(errors.Unauthenticated, match="invalid JWT"):
        authority().verify(token, internal=False)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens jwt.decode is asked to check, in order."""
    seen: list[str] = []
    real_decode = jwt.decode

    def counting(value: str, *args: object, **kwargs: object) -> object:
        seen.append(value)
        return real_decode(value, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def test_verified_token_remembered_until_it_expires(decodes: list[str]) -> None:
    tokens = authority()
    token = authority(ttl_seconds=1).issue_user("ns1", "key1", "n")
    expires = int(time.time()) + 1  # at or after the token's exp
    first = tokens.verify(token, internal=False)
    assert tokens.verify(token, internal=False) is first
    assert len(decodes) == 1
    with pytest.raises(errors.Unauthenticated):
        tokens.verify(token, internal=True)  # remembered per kind: checked again
    time.sleep(max(0.0, expires - time.time()))
    with pytest.raises(errors.Unauthenticated) as caught:
        tokens.verify(token, internal=False)
    assert caught.value.reason == "TOKEN_EXPIRED"


def test_refusals_not_remembered_and_memory_bounded(
    monkeypatch: pytest.MonkeyPatch, decodes: list[str]
) -> None:
    monkeypatch.setattr("services.common.tokens.VERIFIED_CACHE_SIZE", 2)
    tokens = authority()
    for _ in range(2):
        with pytest.raises(errors.Unauthenticated):
            tokens.verify("not.a.token", internal=False)
    assert len(decodes) == 2
    first, second, third = (tokens.issue_user("ns1", f"key{i}", "n") for i in range(3))
    for token in (first, second, third, third, second, first):
        tokens.verify(token, internal=False)
    assert decodes[2:] == [first, second, third, first]  # the oldest was forgotten


def test_with_tls_no_internal_token_is_made_sent_or_taken() -> None:
    """With TLS, certificates prove services: an authority without the
    service key sends no Authorization header and verifies no internal token."""
    tls = TokenAuthority(internal_secret=None, user_secret=USER_SECRET)
    assert not tls.signs_internal
    assert InternalCredentials(tls, "api").metadata() == ()
    with pytest.raises(RuntimeError, match="no internal signing secret"):
        tls.issue_internal("api")
    with pytest.raises(errors.Unauthenticated) as caught:
        tls.verify(authority().issue_internal("api"), internal=True)
    assert caught.value.reason == "NO_INTERNAL_TOKENS"
    # Users still prove themselves by token.
    assert tls.verify(tls.issue_user("ns1", "key1", "n"), internal=False).namespace == "ns1"


def test_in_plaintext_the_internal_token_travels_as_a_bearer_header() -> None:
    metadata = InternalCredentials(authority(), "api").metadata()
    assert [name for name, _ in metadata] == ["authorization"]
    scheme, _, token = metadata[0][1].partition(" ")
    assert scheme == "Bearer"
    assert authority().verify(token, internal=True).key_name == "api"
