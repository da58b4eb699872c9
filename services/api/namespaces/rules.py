"""Pure rules of namespaces, keys and trusts (other-apis reference §3), and the
namespace view. No I/O: the servicer reads and writes the records.

A namespace "trusts" another when the other may read it and manage its keys
and trusts; `system` is trusted by every namespace and cannot be removed, so
records store only the other names (`NamespaceRecord.trust`).
"""

from __future__ import annotations

import re

from sfmesh.v1 import auth_service_pb2, network_service_pb2, records_pb2

from services.api import sizes
from services.api.visibility import SYSTEM
from services.common import errors
from services.common import instance_states as states

VIEW_VERSION = 5
CREATED = "created"
DELETED = "deleted"
SERVICE_KEY_PREFIX = "_service_key"
CREATE_RESERVED_KEY_NAME = "service_key"
INSTANCE_STATES_THAT_ALLOW_DELETE = frozenset({states.DELETED, states.ERROR})
NETWORK_STATES_THAT_BLOCK_DELETE = frozenset(
    {network_service_pb2.NETWORK_STATE_INITIAL, network_service_pb2.NETWORK_STATE_CREATED}
)
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
"""Namespace and key names: one path segment, safe in an etcd key and a token."""


def is_live(record: records_pb2.NamespaceRecord | None) -> bool:
    """Whether the namespace exists and is not deleted."""
    return record is not None and record.state != DELETED


def trusted_names(record: records_pb2.NamespaceRecord) -> list[str]:
    """Everyone the namespace trusts, `system` first."""
    return [SYSTEM, *(name for name in record.trust if name != SYSTEM)]


def is_trusted(caller_namespace: str, record: records_pb2.NamespaceRecord) -> bool:
    """Whether `caller_namespace` may act on the namespace: it is the namespace
    itself, `system`, or a namespace it trusts."""
    return caller_namespace == record.name or caller_namespace in trusted_names(record)


def check_system(caller_namespace: str) -> None:
    """Admin-only calls refuse everyone but `system` with 401 `unauthorized`."""
    if caller_namespace != SYSTEM:
        raise errors.Unauthenticated("unauthorized", reason="NOT_SYSTEM")


def check_visible(
    caller_namespace: str, record: records_pb2.NamespaceRecord | None
) -> records_pb2.NamespaceRecord:
    """`record`, when the caller may act on it; a missing, deleted or
    untrusting namespace is 404 `namespace not found`."""
    if record is None or not is_live(record) or not is_trusted(caller_namespace, record):
        raise not_found()
    return record


def not_found() -> errors.NotFound:
    """The one answer for a namespace that is missing, deleted or not visible."""
    return errors.NotFound("namespace not found", reason="NAMESPACE_NOT_FOUND")


def delete_all_target(own: str, given: str | None, given_exists: bool, confirm: bool) -> str:
    """The namespace a delete-all empties (instances reference §8, networks
    §1.8), by their rules in their order: a named namespace must exist
    (404), `confirm` must be true (400), system must name one ("system"
    means all), others may only name their own (401)."""
    if given is not None and not given_exists:
        raise errors.NotFound("namespace not found")
    if not confirm:
        raise errors.InvalidArgument("parameter confirm is not set true")
    if own == SYSTEM:
        if given is None:
            raise errors.InvalidArgument("system user must specify parameter namespace")
        return given
    if given is not None and given != own:
        raise errors.Unauthenticated("you cannot delete other namespaces", reason="FOREIGN")
    return own


def check_new_namespace_name(name: str) -> None:
    """A new namespace's name is given, and a `NAME` of at most 63 characters
    (Shaken Fist takes any, even names no path can reach)."""
    if not name:
        raise errors.InvalidArgument("no namespace specified")
    check_name("namespace", name)


def check_name(field: str, name: str) -> None:
    """`name` is at most 63 characters of `NAME`; 400 naming `field` otherwise."""
    sizes.check_length(field, name, sizes.NAME_CHARS)
    if not NAME.fullmatch(name):
        raise errors.InvalidArgument(
            f'{field} may hold only a-z, A-Z, 0-9, ".", "_" and "-", and not start with "." or "-"'
        )


def check_secret(key: str) -> None:
    """A key's secret fits what bcrypt reads (72 bytes); 400 otherwise."""
    sizes.check_bytes("key", key.encode(), sizes.KEY_SECRET_BYTES)


def first_key_to_add(key_name: str, key: str) -> bool:
    """Whether a create carries a first key, refusing a bad one.

    Shaken Fist checks the first key only after the namespace exists, so a
    refusal here leaves the namespace behind (reference §3.3); a `key` without
    a `key_name` is ignored. Only the exact name `service_key` is reserved here.
    """
    if not key_name:
        return False
    if not key:
        raise errors.InvalidArgument("no key specified")
    if key_name == CREATE_RESERVED_KEY_NAME:
        raise errors.PermissionDenied("illegal key name", reason="ILLEGAL_KEY_NAME")
    check_name("key_name", key_name)
    check_secret(key)
    return True


def check_new_key(key_name: str, key: str) -> None:
    """The keys route's checks (reference §3.6): both given, and the name not
    in the `_service_key` space that inter-node calls use."""
    if not key_name:
        raise errors.InvalidArgument("no key name specified")
    if not key:
        raise errors.InvalidArgument("no key specified")
    if key_name.startswith(SERVICE_KEY_PREFIX):
        raise errors.PermissionDenied("illegal key name", reason="ILLEGAL_KEY_NAME")
    check_name("key_name", key_name)
    check_secret(key)


def check_deletable(name: str, instance_states: list[int], network_states: list[int]) -> None:
    """In other-apis §3.5's order: `system` is never deleted; nor is a
    namespace with an instance in any state but `deleted` or `error` (so
    `delete-wait` and `*-error` block), nor one with a network `initial` or
    `created` (one in `delete-wait` waits only for its instances to go)."""
    if name == SYSTEM:
        raise errors.PermissionDenied(
            "you cannot delete the system namespace", reason="SYSTEM_NAMESPACE"
        )
    if any(state not in INSTANCE_STATES_THAT_ALLOW_DELETE for state in instance_states):
        raise errors.InvalidArgument(
            "you cannot delete a namespace with instances", reason="NAMESPACE_IN_USE"
        )
    if any(state in NETWORK_STATES_THAT_BLOCK_DELETE for state in network_states):
        raise errors.InvalidArgument(
            "you cannot delete a namespace with networks", reason="NAMESPACE_IN_USE"
        )


def check_external_namespace(name: str) -> None:
    """A trust change names the other namespace."""
    if not name:
        raise errors.InvalidArgument("no external namespace specified")


def put_key(record: records_pb2.NamespaceRecord, key: records_pb2.KeyRecord) -> None:
    """Add `key`, or replace the key of that name in place (a rotation)."""
    for index, existing in enumerate(record.keys):
        if existing.name == key.name:
            record.keys[index].CopyFrom(key)
            return
    record.keys.append(key)


def remove_key(record: records_pb2.NamespaceRecord, key_name: str) -> None:
    """Drop the key called `key_name`; 404 when there is none, 409 when it is
    the last key of `system` (Shaken Fist allows it, and then no one can log
    in as system again)."""
    kept = [key for key in record.keys if key.name != key_name]
    if len(kept) == len(record.keys):
        raise errors.NotFound("key name not found in namespace", reason="KEY_NOT_FOUND")
    if not kept and record.name == SYSTEM:
        raise errors.Conflict(
            "you cannot delete the last key of the system namespace: add another key first",
            reason="LAST_SYSTEM_KEY",
        )
    del record.keys[:]
    record.keys.extend(kept)


def add_trust(record: records_pb2.NamespaceRecord, external: str) -> None:
    """Trust `external` too; trusting it twice, or trusting `system`, changes nothing.
    Whether `external` exists is not checked (reference §3.7)."""
    if external != SYSTEM and external not in record.trust:
        record.trust.append(external)


def remove_trust(record: records_pb2.NamespaceRecord, external: str) -> None:
    """Stop trusting `external`; `system` and absent names are silently kept out."""
    kept = [name for name in record.trust if name != external]
    del record.trust[:]
    record.trust.extend(kept)


def token_is_current(record: records_pb2.NamespaceRecord | None, key_name: str, nonce: str) -> bool:
    """Whether a user token made from `key_name` at `nonce` still stands: the
    namespace is live and the key exists with the same nonce. Deleting a key,
    rotating it (a fresh nonce) or deleting the namespace revokes its tokens."""
    if record is None or not is_live(record):
        return False
    return any(key.name == key_name and key.nonce == nonce for key in record.keys)


def view(record: records_pb2.NamespaceRecord) -> auth_service_pb2.Namespace:
    """The namespace as clients see it (reference §3.2)."""
    namespace = auth_service_pb2.Namespace(
        state=record.state,
        version=VIEW_VERSION,
        name=record.name,
        keys=[key.name for key in record.keys],
        trust=auth_service_pb2.Trust(full=trusted_names(record)),
    )
    namespace.metadata.CopyFrom(record.metadata)
    return namespace
