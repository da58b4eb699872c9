"""The namespace a request names: live (404 when missing or deleted), and,
for most routes, one the caller may act on (404 otherwise, so a namespace
not trusting the caller looks absent)."""

from __future__ import annotations

from services.api.namespaces import rules
from services.api.namespaces.store import NamespaceStore
from services.common.interceptors import caller


class NamespaceLookup:
    """Reads namespace records with their revision, for a later update."""

    def __init__(self, namespaces: NamespaceStore) -> None:
        self._namespaces = namespaces

    async def live(self, name: str) -> NamespaceStore.Stored:
        """The live namespace `name`; 404 when missing or deleted."""
        stored = await self._namespaces.get_stored(name)
        if stored is None or not rules.is_live(stored.record):
            raise rules.not_found()
        return stored

    async def visible(self, name: str) -> NamespaceStore.Stored:
        """The namespace `name` if the caller may act on it; 404 otherwise."""
        stored = await self._namespaces.get_stored(name)
        if stored is None:
            raise rules.not_found()
        rules.check_visible(caller().namespace, stored.record)
        return stored
