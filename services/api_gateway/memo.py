"""A bounded memo for the gateway's pure per-request work.

Two steps give the same answer for the same input every time, so their
results are kept: turning a body-less request (method, path, query) into its
route and request bytes, and turning an RPC's reply bytes into the JSON
answer. A client polling an instance repeats both for every poll. Entries
are bounded in number and each key and value in size, so no client can make
the gateway hold more than a few megabytes; the oldest entry goes first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    """At most `entries` results, the least recently used dropped first."""

    def __init__(self, entries: int) -> None:
        self._entries = entries
        self._kept: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The kept result for `key`, or None."""
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        """Keep `value` for `key`, dropping the least recently used beyond the bound."""
        self._kept[key] = value
        if len(self._kept) > self._entries:
            self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)
