"""services/api/sweeps.py: a sweep's counts are logged when any is not
zero, and a failed sweep is tried again at the next."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import pytest

from services.api.sweeps import sweep_every
from services.common import errors


@dataclass(frozen=True)
class Counts:
    removed: int = 0


async def test_failures_are_retried_and_counts_logged(caplog: pytest.LogCaptureFixture) -> None:
    answers: list[Counts | Exception] = [
        errors.Unavailable("etcd away"),
        RuntimeError("bug"),
        Counts(),
        Counts(removed=2),
    ]
    seen: list[float] = []
    finished = asyncio.Event()

    async def sweep(now: float) -> Counts:
        seen.append(now)
        answer = answers.pop(0)
        if not answers:
            finished.set()
        if isinstance(answer, Exception):
            raise answer
        return answer

    caplog.set_level(logging.INFO, logger="sfmesh.api")
    running = asyncio.create_task(sweep_every(0, sweep, "swept things"))
    await asyncio.wait_for(finished.wait(), 5)
    await asyncio.sleep(0.01)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    assert len(seen) >= 4
    messages = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert ("WARNING", "swept things: not this time: etcd away") in messages
    assert ("ERROR", "swept things: failed; trying again at the next sweep") in messages
    logged = [r for r in caplog.records if r.getMessage() == "swept things"]
    assert [r.fields for r in logged] == [{"removed": 2}]  # type: ignore[attr-defined]
