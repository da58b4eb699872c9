"""Whether an image URL fetched already must be fetched again (reference
§2.7 step 2), and when an instance create next has it checked. Pure.

A check GETs the URL and reads the answer's headers: its Last-Modified (as
epoch seconds) and Content-Length are compared with what the newest
version's blob recorded, `modified` and `size`. Both equal: the blob is
still what the URL serves. Otherwise each difference is a reason, named as
Shaken Fist's artifact events name it (`image requires fetch, <reason>`),
and the answer's body is downloaded into a new blob:

- ``no Last-Modified recorded``: the blob has no `modified` (0);
- ``Last-Modified changed``: the answer's differs from it, or there is none;
- ``no Content-Length recorded``: the blob has no `size` (0);
- ``Content-Length changed``: the answer's differs from it, or there is none.

A blob fetched from an answer without Last-Modified recorded the fetch time
instead (as Shaken Fist's does), so such a URL is fetched again at every
check; identical content then adds no version (``fetch_outcome.py``).
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

NO_MODIFIED = "no Last-Modified recorded"
MODIFIED_CHANGED = "Last-Modified changed"
NO_LENGTH = "no Content-Length recorded"
LENGTH_CHANGED = "Content-Length changed"


@dataclass(frozen=True)
class Recorded:
    """What the newest version's blob says of its source."""

    modified: float
    """The blob's `modified`: the source's Last-Modified, epoch seconds; 0 none."""
    size: int
    """The blob's `size` in bytes; 0 none."""


@dataclass(frozen=True)
class Answered:
    """What the source's answer says now."""

    modified: float | None
    """Its Last-Modified, epoch seconds; None when absent or unreadable."""
    length: int | None
    """Its Content-Length; None when absent or unreadable."""


@dataclass(frozen=True)
class Stale:
    """One reason to fetch again."""

    reason: str
    """One of the four reasons above."""
    old: float | int | None = None
    """What the blob recorded (for a change)."""
    new: float | int | None = None
    """What the answer says (for a change; None when it says nothing)."""

    @property
    def message(self) -> str:
        """The artifact event's message."""
        return f"image requires fetch, {self.reason}"

    @property
    def extra(self) -> dict[str, float | int | None]:
        """The artifact event's extra: old and new values of a change."""
        if self.reason in (NO_MODIFIED, NO_LENGTH):
            return {}
        return {"old": self.old, "new": self.new}


def stale_reasons(recorded: Recorded, answered: Answered) -> tuple[Stale, ...]:
    """Why the source must be fetched again; empty when both Last-Modified
    and Content-Length match what the blob recorded."""
    reasons: list[Stale] = []
    if not recorded.modified:
        reasons.append(Stale(NO_MODIFIED))
    elif answered.modified != recorded.modified:
        reasons.append(Stale(MODIFIED_CHANGED, recorded.modified, answered.modified))
    if not recorded.size:
        reasons.append(Stale(NO_LENGTH))
    elif answered.length != recorded.size:
        reasons.append(Stale(LENGTH_CHANGED, recorded.size, answered.length))
    return tuple(reasons)


def read_answer(last_modified: str | None, content_length: str | None) -> Answered:
    """What an answer's Last-Modified and Content-Length headers say."""
    return Answered(parse_last_modified(last_modified), parse_length(content_length))


def parse_last_modified(header: str | None) -> float | None:
    """A Last-Modified header as epoch seconds; None when absent or unreadable."""
    if not header:
        return None
    try:
        return email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None


def parse_length(header: str | None) -> int | None:
    """A Content-Length header as bytes; None when absent or not a number."""
    text = (header or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def check_due(checked_at: float, now: float, interval: float) -> bool:
    """Whether an instance create has the source checked: its last read
    (`checked_at`, 0 never) is at least `interval` seconds from `now`. A
    stamp ahead of this clock (another node's) counts as recent only within
    the interval, so a clock far ahead cannot stop checks."""
    return abs(now - checked_at) >= interval
