"""Steady REST load on every gateway of the cloud, from clients that retry
once: readers listing instances back to back, and a creator posting an
instance with an `Idempotency-Key` every `CREATE_EVERY` seconds. Each
request is tagged with what was being done to the cloud when it was sent
(`Load.phase`), so a failure is told apart by its cause.

A client retries once, at the next gateway (`retry_policy.py`). A request
failed when its retry failed too (or its first answer was neither 200 nor
retryable).
"""

from __future__ import annotations

import threading
import time
import uuid as uuids
from collections import Counter
from dataclasses import dataclass, field

import httpx

from devmesh.cloud.cloud import Cloud
from devmesh.cloud.layout import CONTROL_PLANE
from tests.e2e.test_vms import BOOT
from tests.multihost.retry_policy import pause_before_retry

READERS = 3
CREATE_EVERY = 2.0
"""Seconds between the creator's creates."""
READ_PAUSE = 0.05
"""Seconds a reader rests between requests (the load shares two cores with the cloud)."""
TIMEOUT = 30.0


@dataclass(frozen=True)
class Outcome:
    """One request: what it was, when it was sent, and what it got."""

    kind: str
    """`read` or `create`."""
    phase: str
    """What was being done to the cloud when it was sent."""
    answers: tuple[str, ...]
    """Each attempt's answer: a status, or the transport error's name."""

    @property
    def retried(self) -> bool:
        return len(self.answers) > 1

    @property
    def failed(self) -> bool:
        return self.answers[-1] != "200"


@dataclass
class Load:
    """The readers and the creator, running until `stop()`."""

    cloud: Cloud
    token: str
    phase: str = "steady"
    outcomes: list[Outcome] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)
    """Idempotency key → the uuid answered."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Start every client thread."""
        self._threads = [
            threading.Thread(target=self._reader, args=(n,), daemon=True) for n in range(READERS)
        ]
        self._threads.append(threading.Thread(target=self._creator, daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the clients once their requests are answered."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def counts(self) -> Counter[tuple[str, str, str]]:
        """(phase, kind, sent | retried | failed) → how many."""
        found: Counter[tuple[str, str, str]] = Counter()
        with self._lock:
            for outcome in self.outcomes:
                found[outcome.phase, outcome.kind, "sent"] += 1
                found[outcome.phase, outcome.kind, "retried"] += outcome.retried
                found[outcome.phase, outcome.kind, "failed"] += outcome.failed
        return found

    def failures(self) -> list[Outcome]:
        with self._lock:
            return [outcome for outcome in self.outcomes if outcome.failed]

    def _reader(self, n: int) -> None:
        clients = Clients(self.cloud, self.token)
        with clients:
            while not self._stop.is_set():
                self._send(clients, "read", n, "GET", "/instances", {})
                n += 1
                time.sleep(READ_PAUSE)

    def _creator(self) -> None:
        run = uuids.uuid4().hex[:6]
        clients = Clients(self.cloud, self.token)
        with clients:
            n = 0
            while not self._stop.wait(CREATE_EVERY):
                body = {**BOOT, "name": f"rolling-{run}-{n}"}
                self._send(clients, "create", n, "POST", "/instances", body, key=f"{run}-{n}")
                n += 1

    def _send(
        self,
        clients: Clients,
        kind: str,
        n: int,
        method: str,
        path: str,
        body: dict[str, object],
        *,
        key: str = "",
    ) -> None:
        phase = self.phase
        headers = {"Idempotency-Key": key} if key else {}
        answers = []
        for attempt in range(2):
            host = CONTROL_PLANE[(n + attempt) % len(CONTROL_PLANE)]
            try:
                reply = clients[host].request(method, path, json=body or None, headers=headers)
            except httpx.TransportError as error:
                answers.append(type(error).__name__)
                if not attempt:
                    pause_before_retry(error)
                continue
            answers.append(str(reply.status_code))
            if reply.status_code == 200 and key:
                with self._lock:
                    self.created[key] = reply.json()["uuid"]
            if reply.status_code != 503:
                break
            if not attempt:
                pause_before_retry(reply)
        with self._lock:
            self.outcomes.append(Outcome(kind, phase, tuple(answers)))


class Clients:
    """A keep-alive HTTPS client per gateway."""

    def __init__(self, cloud: Cloud, token: str) -> None:
        self._clients = {host: cloud.rest(host, token, timeout=TIMEOUT) for host in CONTROL_PLANE}

    def __getitem__(self, host: str) -> httpx.Client:
        return self._clients[host]

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *_: object) -> None:
        for client in self._clients.values():
            client.close()
