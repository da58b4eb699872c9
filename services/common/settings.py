"""Settings declared once each: flag, `SFMESH_*` variable, default and help.

A service lists its settings as `Setting` rows; `add_settings` turns them
into argparse flags whose defaults come from the environment, then from the
row. The default lives in the row alone (rows may take it from a config
dataclass's field default, so that dataclass and flag cannot disagree), and
`--help` prints it with the variable's name, so no help text repeats it.
A variable that does not parse stops the service with a message naming it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = "SFMESH_"


@dataclass(frozen=True)
class Setting:
    """One flag and its environment variable."""

    flag: str
    """The command-line flag, e.g. `--max-cpus`."""
    default: Any
    """The value when neither flag nor variable is given."""
    help: str
    """What it means, without its default (argparse adds that)."""
    parse: Callable[[str], Any] = str
    """Turns the flag's or variable's text into the value."""
    variable: str = ""
    """The variable after `SFMESH_`; by default the flag in capitals
    (`--max-cpus` → `SFMESH_MAX_CPUS`)."""
    choices: Sequence[str] | None = None
    """The only values accepted, when there is such a list."""

    @property
    def env_name(self) -> str:
        """The full name of the environment variable."""
        return PREFIX + (self.variable or self.flag.lstrip("-").replace("-", "_").upper())


TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def parse_bool(text: str) -> bool:
    """A boolean setting's text: true/false, yes/no, on/off or 1/0, in any case."""
    lowered = text.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r} (true or false)")


def add_settings(parser: argparse.ArgumentParser, settings: Iterable[Setting]) -> None:
    """Declare `settings` on `parser`, each defaulted from its variable."""
    for setting in settings:
        shown = "%(default)s" if setting.default not in ("", (), {}) else "none"
        parser.add_argument(
            setting.flag,
            type=setting.parse,
            default=_from_environment(parser, setting),
            choices=setting.choices,
            help=f"{setting.help} ({setting.env_name}; default {shown})",
        )


def environment_value(setting: Setting) -> Any:
    """The setting's variable parsed, or its default when the variable is
    unset; ValueError (or ArgumentTypeError) when it does not parse."""
    text = os.environ.get(setting.env_name)
    if text is None:
        return setting.default
    value = setting.parse(text)
    if setting.choices is not None and value not in setting.choices:
        raise ValueError(f"not one of {', '.join(setting.choices)}")
    return value


def _from_environment(parser: argparse.ArgumentParser, setting: Setting) -> Any:
    """`environment_value`, or a parser error naming the variable."""
    try:
        return environment_value(setting)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(f"{setting.env_name}={os.environ.get(setting.env_name)!r}: {exc}")
