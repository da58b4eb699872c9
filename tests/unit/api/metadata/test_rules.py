"""services/api/metadata/rules.py: the metadata rules of reference §1.10."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2

from services.api.metadata.rules import check_entry, check_metadata, put_entry
from services.common import errors


@pytest.mark.parametrize("value", ["ops", 1, 2.5, True, ["x"], {"a": 1}])
def test_ordinary_values_are_accepted(value: Any) -> None:
    check_entry("owner", value)


@pytest.mark.parametrize("value", [None, "", 0, 0.0, False, [], {}])
def test_falsy_values_are_refused(value: Any) -> None:
    with pytest.raises(errors.InvalidArgument, match=r"^no value specified$"):
        check_entry("owner", value)


def test_empty_key_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument, match=r"^no key specified$"):
        check_entry("", "x")


def test_tags_must_be_a_list() -> None:
    check_entry("tags", ["a"])
    with pytest.raises(errors.InvalidArgument, match='"tags" key should be a JSON list'):
        check_entry("tags", "a")


@pytest.mark.parametrize("affinity", [{"web": 10}, {"web": -5.0}, {"web": "3"}])
def test_affinity_values_are_integers(affinity: dict[str, Any]) -> None:
    check_entry("affinity", affinity)


@pytest.mark.parametrize(
    ("affinity", "message"),
    [
        ("web", "should be a valid JSON dictionary"),
        ({"web": "lots"}, "values should be integers"),
        ({"web": 1.5}, "values should be integers"),
        ({"web": True}, "values should be integers"),
        ({"web": None}, "values should be integers"),
    ],
)
def test_bad_affinity_is_refused(affinity: Any, message: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=message):
        check_entry("affinity", affinity)


def test_a_whole_object_is_checked_entry_by_entry() -> None:
    check_metadata({"owner": "ops", "tags": ["a"]})
    with pytest.raises(errors.InvalidArgument, match="tags"):
        check_metadata({"owner": "ops", "tags": {"not": "a list"}})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("k" * 257, "v", "metadata key must be at most 256 characters long, not 257"),
        ("blob", "v" * 16_383, 'metadata value of "blob" must be at most 16384 bytes, not 16385'),
        ("tags", ["t"] * 65, "tags may have at most 64 entries, not 65"),
        (
            "affinity",
            {f"t{i}": 1 for i in range(65)},
            "affinity may have at most 64 entries, not 65",
        ),
    ],
)
def test_sizes_are_bounded(key: str, value: Any, message: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        check_entry(key, value)
    assert caught.value.message == message


def test_sizes_at_their_limits_pass() -> None:
    check_entry("k" * 256, "v" * 16_382)  # 16,384 bytes as JSON, quotes included
    check_entry("tags", ["t"] * 64)
    check_entry("affinity", {f"t{i}": 1 for i in range(64)})


def test_a_new_key_past_the_limit_is_refused_a_replaced_one_is_not() -> None:
    full = struct_pb2.Struct()
    full.update({f"k{i}": "v" for i in range(64)})
    before = struct_pb2.Struct()
    before.CopyFrom(full)
    with pytest.raises(errors.InvalidArgument) as refused:
        put_entry(full, "k64", struct_pb2.Value(string_value="v"))
    assert refused.value.message == "metadata may have at most 64 entries, not 65"
    assert full == before
    put_entry(full, "k0", struct_pb2.Value(number_value=2))
    assert full.fields["k0"].number_value == 2 and len(full.fields) == 64
    room = struct_pb2.Struct()
    room.update({f"k{i}": "v" for i in range(63)})
    put_entry(room, "k63", struct_pb2.Value(string_value="v"))
    assert len(room.fields) == 64
