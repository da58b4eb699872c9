"""Pure checks of instance metadata (reference §1.10, §4.10).

Keys are non-empty strings; values are any JSON except a falsy one; both
within the bounds of `sizes`. Two keys are reserved: `tags` must be a list,
`affinity` an object whose values are integers (or strings of integers).
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import struct_pb2

from services.api import sizes
from services.common import errors


def check_entry(key: str, value: Any) -> None:
    """Raise InvalidArgument when `key: value` may not be stored."""
    if not key:
        raise errors.InvalidArgument("no key specified")
    sizes.check_length("metadata key", key, sizes.METADATA_KEY_CHARS)
    if (
        value is None
        or value == ""
        or value is False
        or value == []
        or value == {}
        or (isinstance(value, int | float) and not isinstance(value, bool) and value == 0)
    ):
        raise errors.InvalidArgument("no value specified")
    encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    sizes.check_bytes(f'metadata value of "{key}"', encoded, sizes.METADATA_VALUE_BYTES)
    if key == "tags":
        if not isinstance(value, list):
            raise errors.InvalidArgument('value for "tags" key should be a JSON list')
        sizes.check_count("tags", value, sizes.TAGS)
    if key == "affinity":
        check_affinity(value)


def put_entry(metadata: struct_pb2.Struct, key: str, value: struct_pb2.Value) -> None:
    """Store `key: value` (checked by `check_entry`) in the metadata of the
    record being written: a new key only while it holds fewer than
    `sizes.METADATA_KEYS` (400 naming the limit), so no record outgrows
    etcd's request limit; replacing a key always. Every object kind's set
    mutator calls this. Pure."""
    if key not in metadata.fields:
        sizes.check_count("metadata", {*metadata.fields, key}, sizes.METADATA_KEYS)
    metadata.fields[key].CopyFrom(value)


def check_affinity(value: Any) -> None:
    """An object whose values are integers or strings of integers."""
    if not isinstance(value, dict):
        raise errors.InvalidArgument('value for "affinity" key should be a valid JSON dictionary')
    sizes.check_count("affinity", value, sizes.AFFINITY_TAGS)
    for weight in value.values():
        if isinstance(weight, bool) or not _is_integer(weight):
            raise errors.InvalidArgument("affinity dictionary values should be integers")


def check_metadata(metadata: dict[str, Any]) -> None:
    """Every entry of a metadata object."""
    for key, value in metadata.items():
        check_entry(key, value)


def _is_integer(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, int):
        return True
    if isinstance(value, str):
        try:
            int(value)
        except ValueError:
            return False
        return True
    return False
