"""Idempotent create: a retried `POST /instances` with the same
`Idempotency-Key` answers the instance the first one made.

Keys are per namespace and kept `KEY_LIFETIME` seconds. The key record is
written in the same etcd transaction as the instance, so a create either
leaves both or neither. The same key with a different request is a 409.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sfmesh.v1 import instance_service_pb2, records_pb2

from services.common import errors
from services.common.store import Delete, Put, Store, key, kind_prefix

KEY_LIFETIME = 24 * 3600.0


def request_hash(request: instance_service_pb2.CreateInstanceRequest) -> bytes:
    """What makes two creates "the same request": every field but the key. Pure."""
    copy = instance_service_pb2.CreateInstanceRequest()
    copy.CopyFrom(request)
    copy.ClearField("idempotency_key")
    return hashlib.sha256(copy.SerializeToString(deterministic=True)).digest()


def record_key(namespace: str, idempotency_key: str) -> bytes:
    """The etcd key of one idempotency key (hashed: any string is a valid key)."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return key("idempotency", f"{namespace}/{digest}")


@dataclass(frozen=True)
class Earlier:
    """What an idempotency key already points at."""

    instance_uuid: str | None
    """The instance of the first create; None when the key is free (or expired)."""
    mod_revision: int
    """The key record's revision, for the compare-and-swap; 0 when absent."""


class IdempotencyKeys:
    """Idempotency key records in etcd."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def earlier(
        self, namespace: str, idempotency_key: str, digest: bytes, now: float
    ) -> Earlier:
        """The instance a key already made, refusing a key reused for another request."""
        item = await self._store.get(record_key(namespace, idempotency_key))
        if item is None:
            return Earlier(None, 0)
        record = records_pb2.IdempotencyRecord.FromString(item.value)
        if record.expires_at <= now:
            return Earlier(None, item.mod_revision)
        if record.request_hash != digest:
            raise errors.AlreadyExists(
                f'Idempotency-Key "{idempotency_key}" was already used for a different request',
                reason="IDEMPOTENCY_KEY_REUSED",
            )
        return Earlier(record.instance_uuid, item.mod_revision)

    async def forget_expired(self, now: float) -> None:
        """Delete key records past their lifetime (unless rewritten meanwhile)."""
        async for item in self._store.list_prefix(kind_prefix("idempotency")):
            record = records_pb2.IdempotencyRecord.FromString(item.value)
            if record.expires_at <= now:
                await self._store.commit([Delete(item.key, item.mod_revision)])

    @staticmethod
    def claim(
        namespace: str, idempotency_key: str, digest: bytes, uuid: str, now: float, earlier: Earlier
    ) -> Put:
        """The write that ties the key to a new instance, valid only if the key
        is still as `earlier` found it."""
        record = records_pb2.IdempotencyRecord(
            request_hash=digest, instance_uuid=uuid, expires_at=now + KEY_LIFETIME
        )
        return Put(
            record_key(namespace, idempotency_key),
            record.SerializeToString(),
            earlier.mod_revision,
        )
