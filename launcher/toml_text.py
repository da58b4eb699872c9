"""Host config documents written as TOML (the standard library only reads
it). Pure; covers what a host config holds: tables of strings, numbers,
lists of strings and inline tables of strings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def render(document: Mapping[str, Mapping[str, Any]], *, header: str = "") -> str:
    """`document` as TOML text: one `[table]` per top-level key, in order;
    `header` as comment lines first."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for name, table in document.items():
        if lines:
            lines.append("")
        lines.append(f"[{name}]")
        lines += [f"{key} = {_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # A JSON string is a TOML basic string (the same escapes).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{json.dumps(str(key))} = {_value(item)}" for key, item in value.items())
        return "{" + pairs + "}"
    raise TypeError(f"{value!r} has no TOML form here")
