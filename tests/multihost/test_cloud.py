"""The cloud of `devmesh/cloud/` serves through every gateway, each
balancing over the three apis, and loses a control-plane host whole, its
etcd member and eventlog replica included, without losing or doubling a
create, even one whose answer it lost in flight; the host then rejoins and
serves again. Events go on meanwhile: the emitters streaming to the lost
replica move to another (each emitter's stream is on one of the three, as
round robin placed it) and the apis' reads skip it, so before the host
returns every instance's `created` event, which the hypervisors record
during the storm, is listed, once.

Known gap (the api's): a create committed to etcd by cp3's api just before
the kill may lose its audit events (`record_creation` runs after the
commit, and its events reach the spool's disk only before the answer,
which never leaves), and the retry that finds the instance by its key does
not record them again. The test allows that only for a create whose first
attempt failed, checks that no create is audited twice, and prints how many
were never audited."""

from __future__ import annotations

import threading
import time
import uuid as uuids
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devmesh.cloud.cloud import Cloud
from devmesh.cloud.etcd_leader import leader, move_leader
from devmesh.cloud.lan import netns, pids
from devmesh.cloud.layout import CENTRE, CONTROL_PLANE, HOST_ROLES, HYPERVISORS, endpoint
from launcher.roles import ROLES
from tests.e2e.test_vms import BOOT, wait_for
from tests.multihost.retry_policy import pause_before_retry

STORM = 50
"""Creates in the storm."""
STORM_THREADS = 6
LOST = "cp3"
"""The control-plane host the storm loses."""
SURVIVORS = tuple(host for host in CONTROL_PLANE if host != LOST)
KILL_AFTER = STORM // 3
"""Creates answered before the host is lost."""
IN_FLIGHT = 2
"""Creates in flight at the lost host's gateway when it is lost: at least
one of them is past its connection, its answer lost."""
BOOT_TIMEOUT = 120.0
"""Seconds the storm's instances may take to be `created` on two TCG hypervisors."""
CREATE_AUDIT = "create request from REST API"
CREATED = "state created"
"""The api's audit event of a create, and the node's event of the state `created`."""
EVENTS_TIMEOUT = 30.0
ALL_MEMBERS = sorted(endpoint(host, "etcd") for host in CONTROL_PLANE)
ALL_APIS = ",".join(endpoint(host, "api") for host in CONTROL_PLANE)
ALL_EVENTLOGS = ",".join(endpoint(host, "eventlog") for host in CONTROL_PLANE)


def service_commands(host: str) -> dict[str, list[str]]:
    """The command line of each of our services running in `host`'s
    namespace, by module (`services.api`)."""
    found = {}
    for pid in pids(netns(host)):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        except FileNotFoundError:
            continue
        if "-m" in argv and argv[argv.index("-m") + 1].startswith("services."):
            found[argv[argv.index("-m") + 1]] = argv
    return found


def flag(argv: list[str], name: str) -> str:
    """The value of a service's `--name=` flag."""
    (value,) = [arg.removeprefix(f"--{name}=") for arg in argv if arg.startswith(f"--{name}=")]
    return value


def event_hosts(rest: httpx.Client, uuid: str) -> dict[str, list[str]]:
    """An instance's event messages, each with the hosts that recorded it
    (their `fqdn`: each host has a host name of its own), oldest first."""
    found: dict[str, list[str]] = {}
    for event in reversed(rest.get(f"/instances/{uuid}/events", params={"limit": -1}).json()):
        found.setdefault(event["message"], []).append(event["fqdn"])
    return found


def recorded(
    rest: httpx.Client, uuid: str, wanted: tuple[str, ...] = (CREATE_AUDIT, CREATED)
) -> dict[str, list[str]]:
    """`event_hosts` once every message `wanted` is there (by default: the
    api has audited the instance's create and its node has recorded it
    `created`), or what there is after `EVENTS_TIMEOUT`."""
    deadline = time.monotonic() + EVENTS_TIMEOUT
    found = event_hosts(rest, uuid)
    while not set(wanted) <= set(found) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = event_hosts(rest, uuid)
    return found


def settled(rest: httpx.Client, uuid: str) -> dict[str, Any]:
    """The instance once `created` or in error."""

    def view() -> dict[str, Any] | None:
        found = dict(rest.get(f"/instances/{uuid}").json())
        return found if found["state"] in ("created", "error") else None

    return dict(wait_for(view, timeout=BOOT_TIMEOUT))


def test_every_gateway_serves_the_one_cloud(cloud: Cloud) -> None:
    for host, roles in HOST_ROLES.items():
        running = service_commands(host)
        assert sorted(running) == sorted(ROLES[role].module for role in roles if role != "etcd")
        for module, argv in running.items():
            assert Path(flag(argv, "tls-cert")).parent == cloud.hosts[host].tls.folder
            if module == ROLES["gateway"].module:
                assert flag(argv, "api-address") == ALL_APIS, host
            else:
                assert sorted(flag(argv, "etcd").split(",")) == ALL_MEMBERS, (host, module)
                assert flag(argv, "api") == ALL_APIS, (host, module)
                assert flag(argv, "eventlog") == ALL_EVENTLOGS, (host, module)

    tokens = {host: cloud.login(host) for host in CONTROL_PLANE}
    # Three creates in a row through one gateway reach the three apis (round
    # robin), then one through each other gateway.
    sent = ["cp2", "cp2", "cp2", "cp1", "cp3"]
    made = []
    for n, host in enumerate(sent):
        with cloud.rest(host, tokens[host]) as rest:
            reply = rest.post("/instances", json={**BOOT, "name": f"via-{host}-{n}"})
            assert reply.status_code == 200, (host, reply.text)
            made.append(reply.json()["uuid"])
    domains, audited = {}, []
    with cloud.rest(CENTRE, tokens[CENTRE]) as rest:
        for uuid in made:
            instance = settled(rest, uuid)
            assert instance["state"] == "created", instance.get("error_message")
            assert instance["node"] in HYPERVISORS
            domains[uuid] = instance["node"]
            hosts = recorded(rest, uuid)
            assert len(hosts.get(CREATE_AUDIT, [])) == 1, hosts
            assert hosts.get(CREATED) == [instance["node"]], hosts
            audited.append(hosts[CREATE_AUDIT][0])
    assert sorted(audited[:3]) == list(CONTROL_PLANE), audited
    assert {uuid: cloud.domains().get(uuid) for uuid in made} == domains

    for host in CONTROL_PLANE:
        with cloud.rest(host, tokens[host]) as rest:
            listed = {instance["uuid"] for instance in rest.get("/instances").json()}
        assert set(made) <= listed, host


@dataclass
class Storm:
    """Creates whose first attempts rotate over every gateway, each with an
    `Idempotency-Key` and retried once (`retry_policy.py`) at a surviving
    gateway (a client's list of gateways, less the one its balancer marks
    down); what each was answered."""

    token: str
    cloud: Cloud
    run: str = field(default_factory=lambda: uuids.uuid4().hex[:6])
    acknowledged: dict[str, str] = field(default_factory=dict)
    """Name → the uuid answered."""
    sent_at: dict[str, float] = field(default_factory=dict)
    """Name → when the request answered 200 was sent (monotonic)."""
    failures: list[str] = field(default_factory=list)
    """What each attempt that was not answered 200 got."""
    in_flight: Counter[str] = field(default_factory=Counter)
    """Gateway → its attempts sent and not yet answered."""
    retried: set[str] = field(default_factory=set)
    """The names whose first attempt failed."""
    dropped: list[str] = field(default_factory=list)
    """The names whose first attempt lost its connection after it was made:
    an answer lost in flight, which only the key makes safe to retry."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def name(self, n: int) -> str:
        return f"storm-{self.run}-{n}"

    def create(self, n: int) -> None:
        first = CONTROL_PLANE[n % len(CONTROL_PLANE)]
        others = [host for host in SURVIVORS if host != first]
        retry = others[n % len(others)]
        headers = {"Idempotency-Key": f"{self.run}-{n}"}
        body = {**BOOT, "name": self.name(n)}
        for host in (first, retry):
            started = time.monotonic()
            with self.lock:
                self.in_flight[host] += 1
            try:
                with self.cloud.rest(host, self.token, timeout=60) as rest:
                    reply = rest.post("/instances", json=body, headers=headers)
            except httpx.TransportError as error:
                self._failed(f"{host}: {type(error).__name__}", self.name(n))
                if host == first and not isinstance(error, httpx.ConnectError):
                    with self.lock:
                        self.dropped.append(self.name(n))
                if host == first:
                    pause_before_retry(error)
                continue
            finally:
                with self.lock:
                    self.in_flight[host] -= 1
            if reply.status_code == 503:
                self._failed(f"{host}: 503", self.name(n))
                if host == first:
                    pause_before_retry(reply)
                continue
            if reply.status_code != 200:
                self._failed(f"{host}: {reply.status_code} {reply.text}", self.name(n))
                return
            with self.lock:
                self.acknowledged[self.name(n)] = reply.json()["uuid"]
                self.sent_at[self.name(n)] = started
            return

    def _failed(self, what: str, name: str) -> None:
        with self.lock:
            self.failures.append(what)
            self.retried.add(name)


def in_flight_at(storm: Storm, host: str, answered: int, sent: list[Future[None]]) -> bool:
    """Whether `answered` creates are done and `IN_FLIGHT` are in flight at
    `host`'s gateway."""
    with storm.lock:
        busy = storm.in_flight[host] >= IN_FLIGHT
    return busy and sum(future.done() for future in sent) >= answered


def test_losing_a_control_plane_host_loses_and_doubles_no_create(cloud: Cloud, token: str) -> None:
    # The host lost leads etcd: its loss costs the cluster an election.
    move_leader(ALL_MEMBERS, endpoint(LOST, "etcd"), cloud.etcd_client)
    wait_for(lambda: leader(ALL_MEMBERS, cloud.etcd_client) == endpoint(LOST, "etcd"))
    storm = Storm(token, cloud)
    with ThreadPoolExecutor(STORM_THREADS) as pool:
        sent: list[Future[None]] = [pool.submit(storm.create, n) for n in range(STORM)]
        wait_for(lambda: in_flight_at(storm, LOST, KILL_AFTER, sent), timeout=60)
        killed = cloud.hosts[LOST].kill()
        lost_at = time.monotonic()
        for future in sent:
            future.result()
    assert killed and not pids(netns(LOST))
    print(
        f"storm: {len(storm.acknowledged)} of {STORM} answered; {len(storm.failures)} first"
        f" attempts retried ({dict(Counter(storm.failures))}); {len(storm.dropped)} answers"
        " lost in flight at the lost host's gateway"
    )

    # Every create answered, once: each name is one instance, the one answered.
    assert len(storm.acknowledged) == STORM, storm.failures
    # The kill dropped answers in flight, and their retries found them.
    assert storm.dropped, storm.failures
    # The cluster still writes: creates sent after the loss were answered.
    assert any(at > lost_at for at in storm.sent_at.values()), "no create sent after the loss"
    with cloud.rest(CENTRE, token) as rest:
        named: dict[str, list[str]] = {}
        for instance in rest.get("/instances").json():
            named.setdefault(instance["name"], []).append(instance["uuid"])
        for name, uuid in storm.acknowledged.items():
            assert named.get(name) == [uuid], name
        nodes = {}
        for uuid in storm.acknowledged.values():
            instance = settled(rest, uuid)
            assert instance["state"] == "created", instance.get("error_message")
            nodes[uuid] = instance["node"]
        live = {
            instance["uuid"]
            for instance in rest.get("/instances").json()
            if instance["state"] != "deleted"
        }
        # The lost host's eventlog replica is gone, the others store and list:
        # each instance's node recorded it `created` once, the host still lost.
        for uuid in storm.acknowledged.values():
            hosts = recorded(rest, uuid, (CREATED,))
            assert hosts.get(CREATED) == [nodes[uuid]], hosts
    assert not pids(netns(LOST))
    domains = cloud.domains()
    assert set(domains) - live == set(), "orphan domains"
    assert set(storm.acknowledged.values()) <= set(domains)

    # The host comes back: its member rejoins, its api delivers the events
    # it spooled, and its gateway creates.
    cloud.rejoin(LOST)
    with cloud.rest(LOST, cloud.login(LOST)) as rest:
        reply = rest.post("/instances", json={**BOOT, "name": "after-rejoin"})
        assert reply.status_code == 200, reply.text
        instance = settled(rest, reply.json()["uuid"])
        assert instance["state"] == "created", instance.get("error_message")
        # Every instance's events are complete: its node's `created`, and its
        # create audited once by an api replica; but for the known gap.
        unaudited = []
        for name, uuid in storm.acknowledged.items():
            hosts = recorded(rest, uuid)
            assert hosts.get(CREATED) == [nodes[uuid]], hosts
            audits = hosts.get(CREATE_AUDIT, [])
            assert len(audits) <= 1 and set(audits) <= set(CONTROL_PLANE), hosts
            if not audits:
                assert name in storm.retried, (name, hosts)
                unaudited.append(name)
    print(f"storm: {len(unaudited)} retried creates never audited (the known gap): {unaudited}")
