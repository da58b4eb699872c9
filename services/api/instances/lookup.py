"""The instance a request names: by UUID in any state, or by name among
the active ones; either visible to the caller (reference §5.5), else 404.
A read-only answer by UUID may come from the live copy (`cache.py`)."""

from __future__ import annotations

from services.api.instances.cache import UNSURE, InstanceCache
from services.api.visibility import as_uuid, can_see
from services.common import errors
from services.common import instance_states as states
from services.common.instance_store import InstanceStore, StoredInstance
from services.common.interceptors import caller


def visible(stored: StoredInstance | None) -> StoredInstance:
    """`stored` when the caller may see it; 404 when it is absent or not theirs."""
    if stored is None or not can_see(caller().namespace, stored.record.instance.namespace):
        raise errors.NotFound("instance not found")
    return stored


class InstanceLookup:
    """Resolves instance refs for every instance route."""

    def __init__(self, instances: InstanceStore, cache: InstanceCache) -> None:
        self._instances = instances
        self._cache = cache

    async def read(self, ref: str) -> StoredInstance:
        """As `resolve`, but from the live copy when it may answer: for an
        answer that writes nothing."""
        canonical = as_uuid(ref)
        copied = UNSURE if canonical is None else self._cache.get(canonical)
        if copied is UNSURE:
            return await self.resolve(ref)
        return visible(copied)

    async def resolve(self, ref: str) -> StoredInstance:
        """The instance `ref` names (UUID or name), visible to the caller."""
        namespace = caller().namespace
        canonical = as_uuid(ref)
        if canonical is not None:
            return visible(await self._instances.get(canonical))
        matches = [
            stored
            async for stored in self._instances.all()
            if stored.record.instance.name == ref
            and stored.record.instance.state in states.ACTIVE
            and can_see(namespace, stored.record.instance.namespace)
        ]
        if not matches:
            raise errors.NotFound("instance not found")
        if len(matches) > 1:
            raise errors.InvalidArgument(
                f'multiple instances have the name "{ref}" in namespace "{namespace}"'
            )
        return matches[0]
