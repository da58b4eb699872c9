"""The loop every periodic sweep of the api runs in: sweep, log what it did,
sleep, again; a failed sweep is logged and tried again at the next."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from services.common import errors

log = logging.getLogger("sfmesh.api")


async def sweep_every(interval: float, sweep: Callable[[float], Awaitable[Any]], what: str) -> None:
    """Run `sweep(now)` every `interval` seconds until cancelled. Its answer,
    a dataclass of counts, is logged as `what` when any count is not zero."""
    while True:
        try:
            done = dataclasses.asdict(await sweep(time.time()))
            if any(done.values()):
                log.info(what, extra={"fields": done})
        except errors.SfmeshError as exc:  # etcd unreachable, say
            log.warning("%s: not this time: %s", what, exc.message)
        except Exception:
            log.exception("%s: failed; trying again at the next sweep", what)
        await asyncio.sleep(interval)
