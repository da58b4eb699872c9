"""services/api/sizes.py: refusals name the field and its limit."""

from __future__ import annotations

import pytest

from services.api import sizes
from services.common import errors


def test_within_limits_passes() -> None:
    sizes.check_length("name", "x" * 63, 63)
    sizes.check_bytes("key", b"x" * 72, 72)
    sizes.check_count("disk", [1] * 16, 16)


def message_of(refused: pytest.ExceptionInfo[errors.InvalidArgument]) -> str:
    assert refused.value.http_status == 400
    return refused.value.message


def test_over_limit_is_400_naming_field_and_limit() -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        sizes.check_length("name", "x" * 64, 63)
    assert message_of(refused) == "name must be at most 63 characters long, not 64"
    with pytest.raises(errors.InvalidArgument) as refused:
        sizes.check_bytes("key", ("é" * 37).encode(), 72)
    assert message_of(refused) == "key must be at most 72 bytes, not 74"
    with pytest.raises(errors.InvalidArgument) as refused:
        sizes.check_count("disk", [1] * 500, 16)
    assert message_of(refused) == "disk may have at most 16 entries, not 500"
