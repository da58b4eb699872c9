"""A storm of REST requests from a few client threads (creates, deletes,
power operations, metadata sets), and a ledger of what was acknowledged, so
that each acknowledged request's effect can be checked afterwards."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import httpx

from devmesh.mesh import Mesh
from tests.meshes import rest_client

SPEC = {"cpus": 1, "memory": 128, "disk": [{"size": 1, "base": "debian:11"}]}
METADATA_EVENT = "set metadata key request from REST API"
POWER = {"poweroff": "off", "poweron": "on", "reboothard": "on"}
"""Power operations and the power state each leaves when acknowledged."""
HOLD = 3
"""Live instances each client keeps at most."""
MAX_KEYS = 40
"""Metadata keys set per instance at most (the api allows 64)."""


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
    unacknowledged_metadata: list[tuple[str, str, str]] = field(default_factory=list)
    """Sets answered otherwise or not at all: they may or may not have landed."""
    power: dict[str, str | None] = field(default_factory=dict)
    """Instance -> the power state its last power operation left; None when
    that operation's outcome is unknown (no answer, or a 5xx)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class Storm:
    """`threads` clients sending requests until the block ends."""

    def __init__(self, mesh: Mesh, token: str, network: str, threads: int = 3) -> None:
        self.ledger = Ledger()
        self._mesh = mesh
        self._token = token
        self._network = network
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(index,), daemon=True)
            for index in range(threads)
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
    ) -> httpx.Response | None:
        """One request, counted; None when no answer came."""
        with self.ledger.lock:
            self.ledger.sent += 1
        try:
            reply = client.request(method, url, json=body)
        except httpx.HTTPError as error:
            with self.ledger.lock:
                self.ledger.statuses[type(error).__name__] += 1
            time.sleep(0.1)
            return None
        with self.ledger.lock:
            self.ledger.statuses[str(reply.status_code)] += 1
            self.ledger.acknowledged += reply.status_code == 200
        if reply.status_code >= 500:
            time.sleep(0.1)
        return reply

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

    def _create(self, client: httpx.Client, name: str, with_nic: bool, mine: list[str]) -> None:
        body: dict[str, object] = {**SPEC, "name": name}
        if with_nic:
            body["network"] = [{"network_uuid": self._network}]
        reply = self._send(client, "POST", "/instances", body)
        if reply is not None and reply.status_code == 200:
            uuid = reply.json()["uuid"]
            mine.append(uuid)
            with self.ledger.lock:
                self.ledger.created.add(uuid)

    def _delete(self, client: httpx.Client, uuid: str, mine: list[str]) -> None:
        reply = self._send(client, "DELETE", f"/instances/{uuid}")
        if reply is not None and reply.status_code == 200:
            with self.ledger.lock:
                self.ledger.deleted.add(uuid)
        elif reply is None or reply.status_code >= 500:
            mine.append(uuid)  # not known to be deleted: keep it

    def _power(self, client: httpx.Client, uuid: str, operation: str) -> None:
        reply = self._send(client, "POST", f"/instances/{uuid}/{operation}")
        if reply is not None and reply.status_code == 200:
            outcome: str | None = POWER[operation]
        elif reply is None or reply.status_code >= 500:
            outcome = None
        else:
            return  # refused (not created yet): no effect
        with self.ledger.lock:
            self.ledger.power[uuid] = outcome

    def _set_metadata(self, client: httpx.Client, uuid: str, key: str, value: str) -> None:
        reply = self._send(client, "PUT", f"/instances/{uuid}/metadata/{key}", {"value": value})
        acknowledged = reply is not None and reply.status_code == 200
        with self.ledger.lock:
            (self.ledger.metadata if acknowledged else self.ledger.unacknowledged_metadata).append(
                (uuid, key, value)
            )


def metadata_events(client: httpx.Client, ledger: Ledger) -> dict[tuple[str, str, str], int]:
    """How many `set metadata key` events each set of the ledger has."""
    counts: dict[tuple[str, str, str], int] = {}
    sets = ledger.metadata + ledger.unacknowledged_metadata
    for uuid in {uuid for uuid, _, _ in sets}:
        reply = client.get(f"/instances/{uuid}/events", params={"limit": -1})
        assert reply.status_code == 200, reply.text
        seen = Counter(
            (uuid, str(event["extra"].get("key")), str(event["extra"].get("value")))
            for event in reply.json()
            if event["message"] == METADATA_EVENT
        )
        counts.update({entry: seen[entry] for entry in sets if entry[0] == uuid})
    return counts
