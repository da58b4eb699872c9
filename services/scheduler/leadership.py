"""The scheduler's leader election, on an etcd lease.

Every replica campaigns for `/sfmesh/v1/leader/scheduler` with a create-only
write of its advertised address under a lease of LEADER_TTL seconds that it
keeps alive. The one whose write lands leads; the others watch the key and
campaign again as soon as it goes: its holder stopped (the lease is revoked
at once) or died (the lease runs out within LEADER_TTL). A replica that
finds the key naming its own address replaces it at once: that claim is a
dead incarnation's, since this one listens there now.

A term ends when etcd says the lease expired or the key changes under its
holder. The claim's revision fences the term's writes (`Term.fence`): a
leader deposed behind its back (cut off from etcd, paused) cannot write
once another replica holds the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from services.common import errors
from services.common.leaders import SCHEDULER, Leader, LeaderLookup, leader_key
from services.common.leases import KeptLease
from services.common.store import Expect, Put, Store
from services.scheduler.metrics import IS_LEADER

log = logging.getLogger("sfmesh.scheduler.leadership")

LEADER_TTL = 2
"""Seconds the leader's lease lives without a keep-alive: a dead leader's
claim vanishes within this, and a follower takes over."""
RETRY = 0.5
"""Seconds between campaigns when etcd cannot be reached."""
NOT_LEADER_RETRY = 1
"""Seconds a caller of a follower is told to wait before trying again."""
CANCEL_WAIT = 5.0
"""Seconds a term's end waits for the waits it cancels."""

T = TypeVar("T")


@dataclass
class Term:
    """One replica's time as leader."""

    revision: int
    """The etcd revision of its claim: the leader key's `mod_revision`
    while the term lasts."""
    over: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the term ends."""

    def fence(self) -> Expect:
        """Guards a write of this term: it applies only while the claim stands."""
        return Expect(leader_key(SCHEDULER), self.revision)

    def within(self, messages: AsyncIterator[T], *also: asyncio.Event) -> AsyncIterator[T]:
        """`messages` until they end, the term does, or one of `also` is set."""
        return until(messages, self.over, *also)


async def until(messages: AsyncIterator[T], *stops: asyncio.Event) -> AsyncIterator[T]:
    """`messages` until they end or one of `stops` is set."""
    stopped = [asyncio.ensure_future(stop.wait()) for stop in stops]
    try:
        while True:
            following = asyncio.ensure_future(anext(messages))
            await asyncio.wait((following, *stopped), return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                # grpc's stream may end rather than cancel: retrieve whatever it ends with.
                following.add_done_callback(_outcome_retrieved)
                return
            try:
                message = following.result()
            except StopAsyncIteration:
                return
            yield message
    finally:
        for waiting in stopped:
            waiting.cancel()


def _outcome_retrieved(future: asyncio.Future[Any]) -> None:
    """Marks a cancelled read's outcome seen, so asyncio logs no
    "exception was never retrieved" for a stream that ended instead."""
    if not future.cancelled():
        future.exception()


def claim(found: Leader, address: str, lease: int) -> Put | None:
    """The write that makes `address` the leader, given the key as `found`:
    create-only when nobody leads, a replacement when the key names
    `address` itself; None while another replica leads. Pure."""
    if found.mod_revision == 0:
        return Put(leader_key(SCHEDULER), address.encode(), mod_revision=0, lease=lease)
    if found.address == address:
        return Put(leader_key(SCHEDULER), address.encode(), found.mod_revision, lease=lease)
    return None


class Holder(Protocol):
    """What leads while this replica holds the key."""

    async def lead(self, term: Term) -> None:
        """Take over; serve as leader from when this returns."""

    async def follow(self) -> None:
        """The term ended: stop serving as leader."""


class Leadership:
    """Campaigns for the leader key, and holds it while the lease lives."""

    def __init__(self, store: Store, address: str, *, ttl: int = LEADER_TTL) -> None:
        self._store = store
        self._address = address
        self._ttl = ttl
        self._lookup = LeaderLookup(store, SCHEDULER, fallback="")
        self._decided = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.leader = ""
        """The leader's address as last seen; "" when nobody leads."""

    async def start(self, holder: Holder) -> None:
        """Campaign for as long as this runs; returns once the first campaign
        is decided, so that a lone scheduler leads before it serves."""
        self._decided.clear()
        self._task = asyncio.create_task(self._campaign(holder), name="scheduler-leadership")
        decided = asyncio.ensure_future(self._decided.wait())
        await asyncio.wait((self._task, decided), return_when=asyncio.FIRST_COMPLETED)
        decided.cancel()
        if self._task.done():
            self._task.result()

    async def close(self) -> None:
        """End the term, if any, and give the key up (the lease is revoked)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def refusal(self) -> errors.Unavailable:
        """The answer of a replica that does not lead."""
        leader = f"the leader is {self.leader}" if self.leader else "none is elected yet"
        return errors.Unavailable(
            f"this scheduler does not lead: {leader}",
            reason="NOT_LEADER",
            retry_after=NOT_LEADER_RETRY,
        )

    async def _campaign(self, holder: Holder) -> None:
        while True:
            try:
                async with self._store.lease(self._ttl) as kept:
                    await self._hold(kept, holder)
            except Exception as exc:  # etcd away, a lease lost mid-claim: campaign again
                if _cancelled():
                    raise asyncio.CancelledError from exc
                log.warning("campaign failed; trying again: %r", exc)
            self._decided.set()
            await asyncio.sleep(RETRY)

    async def _hold(self, kept: KeptLease, holder: Holder) -> None:
        """Campaign, lead, and campaign again, while `kept` lives."""
        while not kept.lost.is_set():
            found = await self._lookup.read()
            self.leader = found.address
            write = claim(found, self._address, kept.id)
            revision = await self._store.transact([write]) if write is not None else 0
            if revision:
                await self._lead(Term(revision), kept, holder)
                continue
            self._decided.set()
            await _first(self._lookup.changed(found), kept.lost.wait())

    async def _lead(self, term: Term, kept: KeptLease, holder: Holder) -> None:
        """Lead until the lease is lost or the key changes."""
        self.leader = self._address
        claimed = Leader(self._address, term.revision, term.revision)
        try:
            await holder.lead(term)
            self._decided.set()
            log.info("leading", extra={"fields": {"revision": term.revision}})
            with IS_LEADER.track_inprogress():
                await _first(self._lookup.changed(claimed), kept.lost.wait())
        finally:
            term.over.set()
            self.leader = ""
            await holder.follow()
            log.info("no longer leading", extra={"fields": {"revision": term.revision}})


def _cancelled() -> bool:
    """Whether this task was asked to stop: gRPC may end a call cancelled
    under it with an error rather than the cancellation itself."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _first(*waits: Awaitable[object]) -> None:
    """Wait until one of `waits` is done; cancel the others, and wait for
    them at most CANCEL_WAIT: an etcd watch may swallow a cancellation
    (Python 3.11's wait_for inside aetcd), and must not hold a term's end."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=CANCEL_WAIT)
        if pending:
            log.warning("a cancelled wait did not end in time; left to end")
