"""services/node_agent/notices.py: listeners hear notices in the order they
were connected."""

from __future__ import annotations

import pytest

from services.node_agent.notices import Notice, Notices


def test_a_notice_nobody_hears_does_nothing() -> None:
    Notices().instance_changed("a")
    Notices().libvirt_reconnected()


def test_listeners_hear_every_later_notice_in_the_order_connected() -> None:
    heard: list[tuple[str, str]] = []
    notice: Notice[[str]] = Notice()
    notice("before")
    notice.connect(lambda uuid: heard.append(("first", uuid)))
    notice.connect(lambda uuid: heard.append(("second", uuid)))
    notice("a")
    notice("b")
    assert heard == [("first", "a"), ("second", "a"), ("first", "b"), ("second", "b")]


def test_what_a_listener_raises_reaches_the_caller_and_stops_the_rest() -> None:
    heard: list[int] = []

    def refuse(url: str, done: int, total: int | None) -> None:
        raise RuntimeError(url)

    notices = Notices()
    notices.image_progress.connect(refuse)
    notices.image_progress.connect(lambda url, done, total: heard.append(done))
    with pytest.raises(RuntimeError, match="http://x"):
        notices.image_progress("http://x", 1, None)
    assert heard == []


def test_each_agent_has_notices_of_its_own() -> None:
    one, other = Notices(), Notices()
    heard: list[str] = []
    one.instance_changed.connect(heard.append)
    other.instance_changed("b")
    one.instance_changed("a")
    assert heard == ["a"]
