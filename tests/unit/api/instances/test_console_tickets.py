"""Browser console tickets (`console_tickets.py`): signature, expiry,
instance, lifetime. Pure."""

from __future__ import annotations

import jwt
import pytest

from services.api.instances import console_tickets as tickets
from services.common import errors

SECRET = "console-secret-of-at-least-32-bytes"
NOW = 1_700_000_000.25


def ticket(instance: str = "i-1", ttl: int = 300) -> tickets.Ticket:
    return tickets.new_ticket(
        instance, namespace="alpha", key_name="k", nonce="n1", now=NOW, ttl=ttl
    )


def refused(token: str, **kwargs: object) -> errors.SfmeshError:
    arguments = {"secret": SECRET, "instance": "i-1", "now": NOW + 1, **kwargs}
    with pytest.raises(errors.Unauthenticated) as caught:
        tickets.verify(token, str(arguments.pop("secret")), **arguments)  # type: ignore[arg-type]
    return caught.value


def test_a_signed_ticket_verifies_to_what_it_says() -> None:
    made = ticket()
    token = tickets.sign(made, SECRET)
    assert tickets.verify(token, SECRET, instance="i-1", now=NOW + 299.9) == made
    assert made.expires_at == NOW + 300  # fractions kept: checked here, not by PyJWT
    assert ticket().ticket_id != made.ticket_id  # each ticket its own id


def test_it_names_no_address_of_the_console() -> None:
    claims = jwt.decode(tickets.sign(ticket(), SECRET), options={"verify_signature": False})
    assert set(claims) == {"aud", "sub", "ns", "key", "nonce", "exp", "jti"}


def test_an_expired_ticket_is_refused() -> None:
    token = tickets.sign(ticket(ttl=2), SECRET)
    assert refused(token, now=NOW + 2).reason == "TICKET_EXPIRED"
    assert refused(token, now=NOW + 3600).message == "console ticket expired"


def test_another_secret_or_a_changed_ticket_is_refused() -> None:
    token = tickets.sign(ticket(), SECRET)
    assert refused(token, secret="another-secret-of-at-least-32-bytes").reason == "TICKET_INVALID"
    head, _body, mac = token.split(".")
    forged = jwt.encode({"sub": "i-2"}, "x" * 32).split(".")[1]
    assert refused(f"{head}.{forged}.{mac}").reason == "TICKET_INVALID"
    assert refused("not a ticket").reason == "TICKET_INVALID"


def test_a_user_token_is_no_ticket() -> None:
    user = jwt.encode({"aud": "sfmesh-user", "sub": "i-1", "exp": NOW + 60}, SECRET)
    assert refused(user).reason == "TICKET_INVALID"


def test_a_ticket_opens_only_its_own_instance() -> None:
    other = tickets.sign(ticket("i-2"), SECRET)  # another namespace's instance, say
    error = refused(other, instance="i-1")
    assert error.message == "console ticket is for another instance"


def test_the_lifetime_is_the_longest_unless_a_shorter_one_is_asked() -> None:
    assert tickets.lifetime(None, 300) == 300
    assert tickets.lifetime(5, 300) == 5
    for bad in (0, -1, 301):
        with pytest.raises(errors.InvalidArgument):
            tickets.lifetime(bad, 300)


def test_the_page_url_carries_the_ticket_in_its_fragment() -> None:
    url = tickets.page_url("i-1", "a.b.c")
    assert url == "/console/#instance=i-1&ticket=a.b.c"
    assert url.split("#")[0] == tickets.PAGE
