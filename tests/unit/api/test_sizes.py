"""services/api/sizes.py: refusals name the field and its limit."""

from __future__ import annotations

import pytest
from sfmesh.v1 import records_pb2

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


def test_an_instance_record_may_not_grow_past_its_budget() -> None:
    record = records_pb2.InstanceRecord()
    record.instance.metadata.update({"k0": "x" * 16000})
    sizes.check_record_growth(0, record)  # small: fine
    for index in range(1, 70):
        record.instance.metadata.update({f"k{index}": "x" * 16000})
    grown = record.ByteSize()
    with pytest.raises(errors.InvalidArgument) as refused:
        sizes.check_record_growth(grown - 16010, record)
    assert message_of(refused) == (
        f"an instance record may be at most {sizes.INSTANCE_RECORD_BYTES} bytes with its "
        f"interfaces' metadata, not {grown}: remove metadata first"
    )
    # A record already past the budget may still shrink or keep its size.
    sizes.check_record_growth(grown, record)
    sizes.check_record_growth(grown + 1, record)
