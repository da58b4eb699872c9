"""services/api/visibility.py: who sees what (reference §5.5) and what a ref is."""

from __future__ import annotations

import pytest

from services.api.visibility import as_uuid, can_see

CANONICAL = "6c0b3a4e-4f7b-4d3e-9d2a-2f1f0c1f7e11"


def test_owner_sees_own() -> None:
    assert can_see("ns1", "ns1")


def test_system_sees_every_namespace() -> None:
    assert can_see("system", "ns1")
    assert can_see("system", "system")


def test_others_see_nothing() -> None:
    assert not can_see("ns2", "ns1")
    assert not can_see("ns1", "system")
    assert not can_see("", "ns1")
    assert not can_see("System", "ns1")


@pytest.mark.parametrize(
    "ref",
    [
        CANONICAL,
        CANONICAL.upper(),
        CANONICAL.replace("-", ""),
        "{" + CANONICAL + "}",
        "urn:uuid:" + CANONICAL,
    ],
)
def test_uuid_forms_canonicalised(ref: str) -> None:
    assert as_uuid(ref) == CANONICAL


@pytest.mark.parametrize(
    "ref", ["web-1", "", "6c0b3a4e", CANONICAL + "0", CANONICAL[:-1], "not-a-uuid-at-all"]
)
def test_names_are_not_uuids(ref: str) -> None:
    assert as_uuid(ref) is None
