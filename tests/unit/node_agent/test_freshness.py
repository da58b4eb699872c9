"""services/node_agent/freshness.py: when an image URL fetched already is
fetched again (Last-Modified and Content-Length against the newest blob),
the events' messages, header parsing, and when a create's check is due."""

from __future__ import annotations

import pytest

from services.node_agent.freshness import (
    LENGTH_CHANGED,
    MODIFIED_CHANGED,
    NO_LENGTH,
    NO_MODIFIED,
    Answered,
    Recorded,
    Stale,
    check_due,
    parse_last_modified,
    parse_length,
    read_answer,
    stale_reasons,
)

WHEN = 1_700_000_000.0
"""Tue, 14 Nov 2023 22:13:20 GMT."""
RECORDED = Recorded(modified=WHEN, size=512)


def test_both_equal_is_fresh() -> None:
    assert stale_reasons(RECORDED, Answered(WHEN, 512)) == ()


@pytest.mark.parametrize(
    ("answered", "reasons"),
    [
        (Answered(WHEN + 1, 512), [Stale(MODIFIED_CHANGED, WHEN, WHEN + 1)]),
        (Answered(None, 512), [Stale(MODIFIED_CHANGED, WHEN, None)]),
        (Answered(WHEN, 513), [Stale(LENGTH_CHANGED, 512, 513)]),
        (Answered(WHEN, None), [Stale(LENGTH_CHANGED, 512, None)]),
        (
            Answered(WHEN - 60, 1024),
            [Stale(MODIFIED_CHANGED, WHEN, WHEN - 60), Stale(LENGTH_CHANGED, 512, 1024)],
        ),
        (
            Answered(None, None),
            [Stale(MODIFIED_CHANGED, WHEN, None), Stale(LENGTH_CHANGED, 512, None)],
        ),
    ],
    ids=["newer", "no-last-modified", "longer", "no-length", "both", "neither-header"],
)
def test_each_difference_or_missing_header_is_a_reason(
    answered: Answered, reasons: list[Stale]
) -> None:
    assert list(stale_reasons(RECORDED, answered)) == reasons


def test_what_the_blob_never_recorded_is_a_reason_whatever_the_answer() -> None:
    assert stale_reasons(Recorded(0.0, 0), Answered(WHEN, 512)) == (
        Stale(NO_MODIFIED),
        Stale(NO_LENGTH),
    )
    assert stale_reasons(Recorded(0.0, 512), Answered(None, 512)) == (Stale(NO_MODIFIED),)
    assert stale_reasons(Recorded(WHEN, 0), Answered(WHEN, None)) == (Stale(NO_LENGTH),)


def test_event_messages_and_extras_are_shaken_fists() -> None:
    found = stale_reasons(Recorded(0.0, 512), Answered(WHEN, 1024))
    assert [(s.message, s.extra) for s in found] == [
        ("image requires fetch, no Last-Modified recorded", {}),
        ("image requires fetch, Content-Length changed", {"old": 512, "new": 1024}),
    ]
    changed = stale_reasons(Recorded(WHEN, 0), Answered(None, 1))
    assert [(s.message, s.extra) for s in changed] == [
        ("image requires fetch, Last-Modified changed", {"old": WHEN, "new": None}),
        ("image requires fetch, no Content-Length recorded", {}),
    ]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("Tue, 14 Nov 2023 22:13:20 GMT", WHEN),
        ("Tuesday, 14-Nov-23 22:13:20 GMT", WHEN),  # RFC 850, still read
        ("Tue, 14 Nov 2023 23:13:20 +0100", WHEN),
        (None, None),
        ("", None),
        ("yesterday", None),
        ("Tue, 99 Nov 2023 22:13:20 GMT", None),
    ],
)
def test_last_modified_as_epoch_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_last_modified(header) == seconds


@pytest.mark.parametrize(
    ("header", "length"),
    [
        ("512", 512),
        (" 512 ", 512),
        ("0", 0),
        (None, None),
        ("", None),
        ("-1", None),
        ("1e3", None),
        ("\uff15\uff11\uff12", None),  # fullwidth digits: isdigit() but not ASCII
        ("12, 12", None),
    ],
)
def test_content_length_as_bytes(header: str | None, length: int | None) -> None:
    assert parse_length(header) == length


def test_an_answer_as_the_check_reads_it() -> None:
    assert read_answer("Tue, 14 Nov 2023 22:13:20 GMT", "512") == Answered(WHEN, 512)
    assert read_answer(None, None) == Answered(None, None)


@pytest.mark.parametrize(
    ("checked_at", "now", "interval", "due"),
    [
        (0.0, WHEN, 300.0, True),  # never read
        (WHEN - 300, WHEN, 300.0, True),
        (WHEN - 299, WHEN, 300.0, False),
        (WHEN, WHEN, 0.0, True),  # 0: every create
        (WHEN + 10, WHEN, 300.0, False),  # another node's clock a little ahead
        (WHEN + 3600, WHEN, 300.0, True),  # far ahead: not trusted to hold checks off
    ],
)
def test_a_create_checks_once_per_interval(
    checked_at: float, now: float, interval: float, due: bool
) -> None:
    assert check_due(checked_at, now, interval) is due
