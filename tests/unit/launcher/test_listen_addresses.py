"""launcher/addresses.py: host:port parsing, wildcards, and collisions."""

from __future__ import annotations

import pytest

from launcher.addresses import Address, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:13010", Address("127.0.0.1", 13010)),
        ("cp1.example.org:13379", Address("cp1.example.org", 13379)),
        ("localhost:1", Address("localhost", 1)),
        ("[::1]:13000", Address("::1", 13000)),
        ("0.0.0.0:65535", Address("0.0.0.0", 65535)),
    ],
)
def test_addresses_parse(text: str, expected: Address) -> None:
    assert parse_address(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    "text", [":13010", "host", "host:", "host:x", "host:-1", "-host:1", "a..b:1", "1.2.3:1"]
)
def test_what_is_not_an_address(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("[", r"\[")):
        parse_address(text)


def test_a_wildcard_is_dialled_on_loopback() -> None:
    assert Address("0.0.0.0", 1).local() == Address("127.0.0.1", 1)
    assert Address("::", 1).local() == Address("::1", 1)
    assert Address("10.0.0.1", 1).local() == Address("10.0.0.1", 1)


def test_listeners_collide_on_one_port_of_one_host_or_a_wildcard() -> None:
    api = Address("127.0.0.1", 13010)
    assert api.overlaps(Address("127.0.0.1", 13010))
    assert api.overlaps(Address("0.0.0.0", 13010))
    assert Address("::", 13010).overlaps(api)
    assert not api.overlaps(Address("127.0.0.2", 13010))
    assert not api.overlaps(Address("127.0.0.1", 13011))
