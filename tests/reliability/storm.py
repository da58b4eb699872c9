"""A storm of REST requests from a few client threads (creates, deletes,
power operations, metadata sets), and a ledger of what was acknowledged, so
that each acknowledged request's effect and audit event can be checked
afterwards. Each request carries an `X-Request-ID` of its own, which its
audit event records in `extra["request-id"]`."""

from __future__ import annotations

import random
import threading
import time
import uuid as uuids
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import httpx

from devmesh.mesh import Mesh
from tests.meshes import rest_client

SPEC = {"cpus": 1, "memory": 128, "disk": [{"size": 1, "base": "debian:11"}]}
METADATA_EVENT = "set metadata key request from REST API"
CREATE_EVENT = "create request from REST API"
DELETE_EVENT = "delete request from REST API"
POWER = {"poweroff": "off", "poweron": "on", "reboothard": "on"}
"""Power operations and the power state each leaves when acknowledged."""
POWER_EVENTS = {
    "poweroff": "power off request from REST API",
    "poweron": "power on request from REST API",
    "reboothard": "hard reboot request from REST API",
}
"""The audit event each power operation records (services/api/instances/power.py)."""
HOLD = 3
"""Live instances each client keeps at most."""
MAX_KEYS = 40
"""Metadata keys set per instance at most (the api allows 64)."""


@dataclass(frozen=True)
class Audited:
    """A request about one known instance, and the audit event it records."""

    instance: str
    request_id: str
    event: str
    """The audit event's message."""
    acknowledged: bool
    """Answered 200: its event must be there exactly once (else at most once)."""


@dataclass
class Ledger:
    """What a storm sent, and the effects of what was acknowledged (200)."""

    sent: int = 0
    acknowledged: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    created: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    metadata: list[tuple[str, str, str]] = field(default_factory=list)
    """Acknowledged sets: (instance, key, value); keys are never reused."""
    audited: list[Audited] = field(default_factory=list)
    """Every request about a known instance: all but the creates not answered 200."""
    power: dict[str, str | None] = field(default_factory=dict)
    """Instance -> the power state its last power operation left; None when
    that operation's outcome is unknown (no answer, or a 5xx)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class Storm:
    """`threads` clients sending every kind of request until the block ends,
    and one more per keeper powering it on and off. A keeper is an instance
    already `created` (the storm's own seldom are before it ends, so their
    power operations are refused 406) and a power operation takes a second
    or more: keepers of their own clients bring acknowledged power
    operations into the storm without slowing the others."""

    def __init__(
        self, mesh: Mesh, token: str, network: str, keepers: list[str], threads: int = 3
    ) -> None:
        self.ledger = Ledger()
        self._mesh = mesh
        self._token = token
        self._network = network
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(index,), daemon=True)
            for index in range(threads)
        ] + [
            threading.Thread(target=self._keeper_client, args=(index, keeper), daemon=True)
            for index, keeper in enumerate(keepers)
        ]

    def __enter__(self) -> Storm:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _send(
        self, client: httpx.Client, method: str, url: str, body: object = None
    ) -> tuple[httpx.Response | None, str]:
        """One request, counted, under a request id of its own: its answer
        (None when none came) and that id."""
        request_id = f"storm-{uuids.uuid4().hex}"
        with self.ledger.lock:
            self.ledger.sent += 1
        try:
            reply = client.request(method, url, json=body, headers={"X-Request-ID": request_id})
        except httpx.HTTPError as error:
            with self.ledger.lock:
                self.ledger.statuses[type(error).__name__] += 1
            time.sleep(0.1)
            return None, request_id
        with self.ledger.lock:
            self.ledger.statuses[str(reply.status_code)] += 1
            self.ledger.acknowledged += reply.status_code == 200
        if reply.status_code >= 500:
            time.sleep(0.1)
        return reply, request_id

    def _audit(self, uuid: str, request_id: str, event: str, reply: httpx.Response | None) -> bool:
        """Note the audit event a request about `uuid` records; whether it
        was acknowledged."""
        acknowledged = reply is not None and reply.status_code == 200
        with self.ledger.lock:
            self.ledger.audited.append(Audited(uuid, request_id, event, acknowledged))
        return acknowledged

    def _client(self, index: int) -> None:
        rng = random.Random(index)
        mine: list[str] = []
        keys: Counter[str] = Counter()
        with rest_client(self._mesh, self._token, timeout=40) as client:
            for serial in range(1_000_000):
                if self._stop.is_set():
                    return
                pick = rng.random()
                if len(mine) < 2 or (len(mine) < HOLD and pick < 0.1):
                    self._create(client, f"storm-{index}-{serial}", serial % 2 == 0, mine)
                elif pick < 0.2:
                    self._delete(client, mine.pop(rng.randrange(len(mine))), mine)
                elif pick < 0.45:
                    self._power(client, rng.choice(mine), rng.choice(list(POWER)))
                else:
                    uuid = rng.choice(mine)
                    if keys[uuid] < MAX_KEYS:
                        keys[uuid] += 1
                        self._set_metadata(client, uuid, f"k{index}x{serial}", f"v{serial}")

    def _keeper_client(self, index: int, keeper: str) -> None:
        rng = random.Random(-1 - index)
        with rest_client(self._mesh, self._token, timeout=40) as client:
            while not self._stop.is_set():
                self._power(client, keeper, rng.choice(list(POWER)))

    def _create(self, client: httpx.Client, name: str, with_nic: bool, mine: list[str]) -> None:
        body: dict[str, object] = {**SPEC, "name": name}
        if with_nic:
            body["network"] = [{"network_uuid": self._network}]
        reply, request_id = self._send(client, "POST", "/instances", body)
        if reply is not None and reply.status_code == 200:
            uuid = reply.json()["uuid"]
            mine.append(uuid)
            self._audit(uuid, request_id, CREATE_EVENT, reply)
            with self.ledger.lock:
                self.ledger.created.add(uuid)

    def _delete(self, client: httpx.Client, uuid: str, mine: list[str]) -> None:
        reply, request_id = self._send(client, "DELETE", f"/instances/{uuid}")
        if self._audit(uuid, request_id, DELETE_EVENT, reply):
            with self.ledger.lock:
                self.ledger.deleted.add(uuid)
        elif reply is None or reply.status_code >= 500:
            mine.append(uuid)  # not known to be deleted: keep it

    def _power(self, client: httpx.Client, uuid: str, operation: str) -> None:
        reply, request_id = self._send(client, "POST", f"/instances/{uuid}/{operation}")
        if self._audit(uuid, request_id, POWER_EVENTS[operation], reply):
            outcome: str | None = POWER[operation]
        elif reply is None or reply.status_code >= 500:
            outcome = None
        else:
            return  # refused (not created yet): no effect
        with self.ledger.lock:
            self.ledger.power[uuid] = outcome

    def _set_metadata(self, client: httpx.Client, uuid: str, key: str, value: str) -> None:
        url = f"/instances/{uuid}/metadata/{key}"
        reply, request_id = self._send(client, "PUT", url, {"value": value})
        if self._audit(uuid, request_id, METADATA_EVENT, reply):
            with self.ledger.lock:
                self.ledger.metadata.append((uuid, key, value))


def audit_counts(client: httpx.Client, ledger: Ledger) -> dict[Audited, int]:
    """How many events of its message and request id each audited request has."""
    counts: dict[Audited, int] = {}
    for uuid in {audited.instance for audited in ledger.audited}:
        reply = client.get(f"/instances/{uuid}/events", params={"limit": -1})
        assert reply.status_code == 200, reply.text
        seen = Counter(
            (event["message"], (event["extra"] or {}).get("request-id")) for event in reply.json()
        )
        counts.update(
            {
                audited: seen[audited.event, audited.request_id]
                for audited in ledger.audited
                if audited.instance == uuid
            }
        )
    return counts
