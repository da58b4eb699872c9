"""How long and how many: the bounds on what one request may carry, and the
one way a refusal names them (400, the field, the limit). Pure.

Shaken Fist bounds none of these; sfmesh does, so that no record outgrows
etcd's request limit (1.5 MiB) and no list outgrows gRPC's message limit
(4 MiB). services/api/README.md tabulates them.
"""

from __future__ import annotations

from collections.abc import Sized

from google.protobuf.message import Message

from services.common import errors

DISKS = 16
"""Disks per instance: with 16 NICs and the config drive, libvirt still
starts a pc or q35 domain without extra PCI buses."""
NETWORKS = 16
"""Networkspecs (NICs) per instance."""
SIDE_CHANNELS = 16
"""Side channels per instance."""
SIDE_CHANNEL_CHARS = 64
"""Characters in a side channel's name."""
URL_CHARS = 2048
"""Characters in a disk `base` or an `nvram_template`."""
SSH_KEY_CHARS = 16384
"""Characters in `ssh_key` (several RSA-16384 keys fit)."""
USER_DATA_CHARS = 65535
"""Characters in `user_data`, base64 (as OpenStack Nova bounds it)."""
IDEMPOTENCY_KEY_CHARS = 255
"""Characters in an `Idempotency-Key`."""
METADATA_KEYS = 64
"""Keys in the metadata a create gives."""
METADATA_KEY_CHARS = 256
"""Characters in a metadata key."""
METADATA_VALUE_BYTES = 16384
"""Bytes of a metadata value as JSON."""
TAGS = 64
"""Entries in the `tags` metadata list."""
AFFINITY_TAGS = 64
"""Entries in the `affinity` metadata object."""
NAME_CHARS = 63
"""Characters in a namespace, key or network name."""
KEY_SECRET_BYTES = 72
"""Bytes of a namespace key's secret: bcrypt reads no further."""
INSTANCE_RECORD_BYTES = 1 << 20
"""Bytes an instance record may grow to through metadata (its own and its
interfaces'): the rest of etcd's 1.5 MiB request limit stays for the fields
node agents and the api write later, so a delete can always be recorded."""


def check_length(field: str, value: str, limit: int) -> None:
    """400 when `value` has more than `limit` characters."""
    if len(value) > limit:
        raise errors.InvalidArgument(
            f"{field} must be at most {limit} characters long, not {len(value)}"
        )


def check_bytes(field: str, value: bytes, limit: int) -> None:
    """400 when `value` has more than `limit` bytes."""
    if len(value) > limit:
        raise errors.InvalidArgument(f"{field} must be at most {limit} bytes, not {len(value)}")


def check_record_growth(before: int, record: Message) -> None:
    """400 when a change grew an instance record (of `before` bytes) past
    `INSTANCE_RECORD_BYTES`; a change that shrinks it always passes."""
    after = record.ByteSize()
    if after > before and after > INSTANCE_RECORD_BYTES:
        raise errors.InvalidArgument(
            f"an instance record may be at most {INSTANCE_RECORD_BYTES} bytes with its "
            f"interfaces' metadata, not {after}: remove metadata first"
        )


def check_count(field: str, items: Sized, limit: int) -> None:
    """400 when `items` has more than `limit` entries."""
    if len(items) > limit:
        raise errors.InvalidArgument(f"{field} may have at most {limit} entries, not {len(items)}")
