"""The leading scheduler dies (SIGKILL of its process, nothing else of its
host) during a stream of creates through the three gateways: placement
resumes on another replica within `RESUME_LIMIT`, every create is answered
once and boots, and no hypervisor holds more than the scheduler's rules
allow.

The stream sends one create every `CREATE_EVERY` seconds, each with an
`Idempotency-Key`, its first attempt at the gateways in turn and its one
retry at the next (`retry_policy.py`). The leader is the host whose address
etcd's leader key (`/sfmesh/v1/leader/scheduler`) names. Resuming is
measured from the kill to the answer of the first attempt sent after the
kill that was answered 200, and printed.

Capacity, as the scheduler counts it (`services/scheduler/placement.py`):
per node, the vCPUs of the instances placed there at most its CPUs times
the overcommit ratio, and their memory at most its memory less the host's
reservation, each node's CPUs and memory as its last report in etcd says.
Both nodes report this whole machine (`devmesh/cloud/__init__.py`); the
instances have as many vCPUs as it has CPUs, so the stream fills most of
the vCPUs the two nodes may give.
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid as uuids
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from sfmesh.v1 import records_pb2

from devmesh.cloud.cloud import Cloud
from devmesh.cloud.layout import ADDRESSES, CENTRE, CONTROL_PLANE, HYPERVISORS, endpoint
from devmesh.mesh import SMALL_MACHINE
from services.common.leaders import SCHEDULER, leader_key
from services.common.store import key
from services.scheduler.placement import Policy
from tests.e2e.test_vms import BOOT, wait_for
from tests.multihost.retry_policy import pause_before_retry
from tests.multihost.test_cloud import settled

CPUS = os.cpu_count() or 1
"""Each instance's vCPUs: as many as a node has CPUs, the most one may have."""
STREAM = 24
"""Creates in the stream."""
CREATE_EVERY = 0.4
"""Seconds between two creates of the stream."""
KILL_AFTER = 6
"""Creates answered before the leader is killed."""
RESUME_LIMIT = 5.0
"""Seconds placement may take to resume after the kill."""
STREAM_THREADS = 8


@dataclass(frozen=True)
class Attempt:
    """One request of a create: where, when sent and answered, and what it got."""

    host: str
    sent: float
    answered: float
    answer: str
    """A status, or the transport error's name."""


@dataclass
class Stream:
    """The stream's creates and what each attempt got."""

    cloud: Cloud
    token: str
    run: str = field(default_factory=lambda: uuids.uuid4().hex[:6])
    acknowledged: dict[str, str] = field(default_factory=dict)
    """Name → the uuid answered."""
    attempts: list[Attempt] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def name(self, n: int) -> str:
        return f"failover-{self.run}-{n}"

    def create(self, n: int) -> None:
        headers = {"Idempotency-Key": f"{self.run}-{n}"}
        body = {**BOOT, "cpus": CPUS, "name": self.name(n)}
        for attempt in range(2):
            host = CONTROL_PLANE[(n + attempt) % len(CONTROL_PLANE)]
            sent = time.monotonic()
            try:
                with self.cloud.rest(host, self.token, timeout=60) as rest:
                    reply = rest.post("/instances", json=body, headers=headers)
            except httpx.TransportError as error:
                self._record(Attempt(host, sent, time.monotonic(), type(error).__name__))
                if not attempt:
                    pause_before_retry(error)
                continue
            self._record(Attempt(host, sent, time.monotonic(), str(reply.status_code)))
            if reply.status_code == 200:
                with self.lock:
                    self.acknowledged[self.name(n)] = reply.json()["uuid"]
            if reply.status_code != 503:
                return
            if not attempt:
                pause_before_retry(reply)

    def _record(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)

    def resumed(self, killed: float) -> float | None:
        """Seconds from `killed` to the answer of the first attempt sent
        after it and answered 200."""
        with self.lock:
            answers = [a.answered for a in self.attempts if a.sent > killed and a.answer == "200"]
        return min(answers) - killed if answers else None


def etcd_value(cloud: Cloud, name: bytes) -> bytes | None:
    """The value at key `name`, read from cp1's etcd member's JSON gateway."""
    reply = httpx.post(
        f"https://{endpoint(CENTRE, 'etcd')}/v3/kv/range",
        json={"key": base64.b64encode(name).decode()},
        timeout=5,
        verify=cloud.etcd_client,
    )
    reply.raise_for_status()
    found = reply.json().get("kvs", [])
    return base64.b64decode(found[0]["value"]) if found else None


def leading_host(cloud: Cloud) -> str | None:
    """The control-plane host whose scheduler the leader key names."""
    value = etcd_value(cloud, leader_key(SCHEDULER))
    hosts = {endpoint(host, "scheduler"): host for host in CONTROL_PLANE}
    return hosts.get(value.decode()) if value is not None else None


def node_capacity(cloud: Cloud, node: str) -> tuple[float, int]:
    """(the vCPUs, the MiB) the scheduler may give `node`'s instances, from
    its last report in etcd."""
    value = etcd_value(cloud, key("node", node))
    assert value is not None, node
    report = records_pb2.NodeRecord.FromString(value).last_report
    reserved = int(SMALL_MACHINE["SFMESH_RAM_RESERVED_MIB"])
    return report.cpus_total * Policy().cpu_overcommit_ratio, report.memory_total_mib - reserved


def test_placement_resumes_within_5_s_of_the_leaders_kill(cloud: Cloud, token: str) -> None:
    leader = wait_for(lambda: leading_host(cloud))
    stream = Stream(cloud, token)
    killed = 0.0
    try:
        with ThreadPoolExecutor(STREAM_THREADS) as pool:
            sent: list[Future[None]] = []
            for n in range(STREAM):
                sent.append(pool.submit(stream.create, n))
                if n == KILL_AFTER:
                    wait_for(lambda: len(stream.acknowledged) >= KILL_AFTER, timeout=60)
                    cloud.hosts[leader].kill_role("scheduler")
                    killed = time.monotonic()
                time.sleep(CREATE_EVERY)
            for future in sent:
                future.result()
        successor = leading_host(cloud)
    finally:
        cloud.hosts[leader].launch("scheduler")
        cloud.hosts[leader].wait_serving(["scheduler"])
    resumed = stream.resumed(killed)
    answers = Counter(attempt.answer for attempt in stream.attempts if attempt.sent > killed)
    print(
        f"scheduler failover: {leader} ({ADDRESSES[leader]}) killed, {successor} leads;"
        f" placement resumed {resumed if resumed is None else round(resumed, 2)} s after the"
        f" kill; attempts sent after it: {dict(answers)}; {len(stream.acknowledged)} of"
        f" {STREAM} creates answered"
    )

    assert successor in CONTROL_PLANE and successor != leader
    assert resumed is not None and resumed <= RESUME_LIMIT
    # Every create answered, once: each name is one instance, the one answered.
    assert len(stream.acknowledged) == STREAM, Counter(a.answer for a in stream.attempts)
    with cloud.rest(CENTRE, token) as rest:
        named: dict[str, list[str]] = {}
        for instance in rest.get("/instances").json():
            named.setdefault(instance["name"], []).append(instance["uuid"])
        assert {name: named.get(name) for name in stream.acknowledged} == {
            name: [uuid] for name, uuid in stream.acknowledged.items()
        }
        placed: dict[str, list[dict[str, object]]] = {node: [] for node in HYPERVISORS}
        for uuid in stream.acknowledged.values():
            instance = settled(rest, uuid)
            assert instance["state"] == "created", instance.get("error_message")
            placed[str(instance["node"])].append(instance)
    # No node holds more than the scheduler may give it.
    for node, instances in placed.items():
        cpus, memory = node_capacity(cloud, node)
        used = sum(int(str(instance["cpus"])) for instance in instances)
        held = sum(int(str(instance["memory"])) for instance in instances)
        print(f"  {node}: {len(instances)} instances, {used}/{cpus:g} vCPUs, {held}/{memory} MiB")
        assert used <= cpus and held <= memory, node
