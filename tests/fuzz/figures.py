"""The fuzz's figures, kept apart from conftest.py so the tests and the
summary hook share one module (pytest imports a conftest under its own name)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Tally:
    """The figures of one caller's fuzz."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    findings: int = 0
    """Cases that broke a rule (a 5xx, a mismatch with the document, a
    refused write that changed something), the first of each kind per route."""
    refusals_checked: int = 0
    """Refused non-GET cases checked to have changed nothing."""
    succeeded: set[str] = field(default_factory=set)
    """The routes that answered 200 at least once."""


TALLIES: dict[str, Tally] = {}
"""Each caller's figures, printed at the end of the run."""
