"""Single values of a host config, checked. Pure: each function returns the
value (or a placeholder) and appends a problem naming the value's key to
`problems` when it is wrong, so one pass reports every problem."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from launcher.addresses import Address, parse_address
from services.common.settings import Setting

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A host's (and its etcd member's) name."""


def table(problems: list[str], document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """`document[name]`, a table ({} when absent)."""
    found = document.get(name, {})
    if not isinstance(found, dict):
        problems.append(f"{name}: a table, [{name}]")
        return {}
    return found


def unknown_keys(
    problems: list[str], where: str, table: Mapping[str, Any], known: Iterable[str]
) -> None:
    """A problem for each key of `table` not in `known` (with a guess);
    `where` is the table's name."""
    known = list(known)
    for key in table:
        name = f"{where}.{key}" if where else key
        if key not in known:
            problems.append(f"{name}: unknown key{suggest(key, known)}; known: {', '.join(known)}")


def address_at(problems: list[str], name: str, table: Mapping[str, Any], default: str) -> Address:
    """The address at key `name` (`api.listen`) of `table`, `default` when absent."""
    return address(problems, name, table.get(name.rpartition(".")[2], default))


def address(problems: list[str], name: str, value: Any) -> Address:
    """`value` as an address, or a placeholder and a problem naming `name`."""
    try:
        return parse_address(value)
    except ValueError as exc:
        problems.append(f"{name}: {exc}")
        return Address("127.0.0.1", 0)


def host_address(problems: list[str], value: Any) -> str:
    try:
        address = parse_address(f"[{value}]:1" if ":" in str(value) else f"{value}:1")
    except ValueError:
        problems.append(f"host.address: {value!r} is neither an IP address nor a host name")
        return "127.0.0.1"
    if address.wildcard:
        problems.append(
            f"host.address: {value!r} is not an address other hosts can dial;"
            " listen on it with a role's listen instead"
        )
    return address.host


def absolute_path(problems: list[str], name: str, value: Any) -> Path:
    """`value` as an absolute path."""
    if not isinstance(value, str) or not value.startswith("/"):
        problems.append(f"{name}: {value!r} is not an absolute path")
        return Path("/")
    return Path(value)


def flag_text(problems: list[str], name: str, value: Any) -> str | None:
    """A TOML value as the text of its flag: a list joined by commas, a table
    as NAME=VALUE pairs joined by commas (image_shorthands)."""
    if isinstance(value, bool):
        problems.append(f"{name}: {value!r}: no setting takes true or false")
        return None
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    if isinstance(value, dict) and all(isinstance(item, str) for item in value.values()):
        return ",".join(f"{key}={item}" for key, item in value.items())
    problems.append(f"{name}: {value!r} is not a string, number, list of strings or table")
    return None


def valid_setting(problems: list[str], name: str, setting: Setting, text: str) -> bool:
    """Whether the service's own parser takes `text`; a problem naming the key if not."""
    try:
        value = setting.parse(text)
        if setting.choices is not None and value not in setting.choices:
            raise ValueError(f"not one of {', '.join(setting.choices)}")
        if name.endswith(".advertise") and text:
            parse_address(text)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        problems.append(f"{name}: {text!r} is not valid: {exc}")
        return False
    return True


def suggest(word: str, known: Iterable[str]) -> str:
    """ " (did you mean X?)" for the closest of `known`, or ""."""
    close = difflib.get_close_matches(str(word), list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""
