"""Who sees what (reference §5.5). Pure."""

from __future__ import annotations

import uuid

SYSTEM = "system"


def can_see(caller_namespace: str, owner_namespace: str) -> bool:
    """Only the owning namespace and system see an object; others get 404."""
    return caller_namespace in (owner_namespace, SYSTEM)


def as_uuid(ref: str) -> str | None:
    """The canonical UUID `ref` denotes, or None when it is a name."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        return None
