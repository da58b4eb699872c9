"""How a node agent names the libvirt domains it makes: `sfmesh-<node>-<uuid>`.
Only a name that is exactly a node's prefix followed by a uuid belongs to
that node, so node `a` never mistakes node `a-b`'s domains for its own. Pure."""

from __future__ import annotations

import uuid


def domain_prefix(node: str) -> str:
    """The name prefix of every domain node `node` makes."""
    return f"sfmesh-{node}-"


def domain_name(node: str, instance_uuid: str) -> str:
    """The domain of an instance on node `node`."""
    return f"{domain_prefix(node)}{instance_uuid}"


def instance_of(node: str, name: str) -> str | None:
    """The instance uuid of a domain named `name` if node `node` made it."""
    prefix = domain_prefix(node)
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    return rest if is_uuid(rest) else None


def is_uuid(text: str) -> bool:
    """Whether `text` is a uuid in its canonical lower-case form."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
