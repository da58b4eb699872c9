"""The cloud of `cloud.py` serves through every gateway, and loses a
control-plane host whole, its etcd member included, without losing or
doubling a create; the host then rejoins and serves again."""

from __future__ import annotations

import threading
import time
import uuid as uuids
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from launcher.roles import ROLES
from tests.e2e.test_vms import BOOT, wait_for
from tests.multihost.cloud import (
    CENTRE,
    CONTROL_PLANE,
    HOST_ROLES,
    HYPERVISORS,
    Cloud,
    endpoint,
)
from tests.multihost.etcd_leader import leader, move_leader
from tests.multihost.lan import netns, pids

STORM = 50
"""Creates in the storm."""
STORM_THREADS = 6
LOST = "cp3"
"""The control-plane host the storm loses."""
STORM_GATEWAYS = ("cp1", "cp2")
KILL_AFTER = STORM // 3
"""Creates answered before the host is lost."""
BOOT_TIMEOUT = 120.0
"""Seconds the storm's instances may take to be `created` on two TCG hypervisors."""
CREATE_AUDIT = "create request from REST API"
CREATED = "state created"
"""The api's audit event of a create, and the node's event of the state `created`."""
ALL_MEMBERS = sorted(endpoint(host, "etcd") for host in CONTROL_PLANE)


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


def etcd_flag(argv: list[str]) -> list[str]:
    """The endpoints a service's `--etcd=` flag lists."""
    (value,) = [arg.removeprefix("--etcd=") for arg in argv if arg.startswith("--etcd=")]
    return value.split(",")


def event_hosts(rest: httpx.Client, uuid: str) -> dict[str, list[str]]:
    """An instance's event messages, each with the hosts that recorded it
    (their `fqdn`: each host has a host name of its own), oldest first."""
    found: dict[str, list[str]] = {}
    for event in reversed(rest.get(f"/instances/{uuid}/events", params={"limit": -1}).json()):
        found.setdefault(event["message"], []).append(event["fqdn"])
    return found


def recorded_created(rest: httpx.Client, uuid: str) -> dict[str, list[str]]:
    """`event_hosts` once the instance's node has recorded it `created`."""
    return dict(wait_for(lambda: (found := event_hosts(rest, uuid)).get(CREATED) and found))


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
            if module != ROLES["gateway"].module:
                assert sorted(etcd_flag(argv)) == ALL_MEMBERS, (host, module)

    tokens = {host: cloud.login(host) for host in CONTROL_PLANE}
    made = {}
    for host in CONTROL_PLANE:
        with cloud.rest(host, tokens[host]) as rest:
            reply = rest.post("/instances", json={**BOOT, "name": f"via-{host}"})
            assert reply.status_code == 200, (host, reply.text)
            made[host] = reply.json()["uuid"]
    domains = {}
    for host, uuid in made.items():
        with cloud.rest(host, tokens[host]) as rest:
            instance = settled(rest, uuid)
        assert instance["state"] == "created", (host, instance.get("error_message"))
        assert instance["node"] in HYPERVISORS
        domains[uuid] = instance["node"]
        # Each gateway fronts its own host's api; the node that booted it says so.
        with cloud.rest(CENTRE, tokens[CENTRE]) as rest:
            hosts = recorded_created(rest, uuid)
        assert hosts[CREATE_AUDIT] == [host]
        assert hosts[CREATED] == [instance["node"]]
    assert {uuid: cloud.domains().get(uuid) for uuid in made.values()} == domains

    for host in CONTROL_PLANE:
        with cloud.rest(host, tokens[host]) as rest:
            listed = {instance["uuid"] for instance in rest.get("/instances").json()}
        assert set(made.values()) <= listed, host


@dataclass
class Storm:
    """Creates sent to the gateways of `STORM_GATEWAYS`, each with an
    `Idempotency-Key` and retried once, with the same key, at the other
    gateway on a 503 or a connection error; what each was answered."""

    token: str
    cloud: Cloud
    run: str = field(default_factory=lambda: uuids.uuid4().hex[:6])
    acknowledged: dict[str, str] = field(default_factory=dict)
    """Name → the uuid answered."""
    sent_at: dict[str, float] = field(default_factory=dict)
    """Name → when the request answered 200 was sent (monotonic)."""
    failures: list[str] = field(default_factory=list)
    """What each request that was not answered 200 got, at either attempt."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def name(self, n: int) -> str:
        return f"storm-{self.run}-{n}"

    def create(self, n: int) -> None:
        first = STORM_GATEWAYS[n % 2]
        order = (first, *(host for host in STORM_GATEWAYS if host != first))
        headers = {"Idempotency-Key": f"{self.run}-{n}"}
        body = {**BOOT, "name": self.name(n)}
        for host in order:
            started = time.monotonic()
            with self.cloud.rest(host, self.token, timeout=60) as rest:
                try:
                    reply = rest.post("/instances", json=body, headers=headers)
                except httpx.TransportError as error:
                    self._failed(f"{host}: {type(error).__name__}")
                    continue
            if reply.status_code == 503:
                self._failed(f"{host}: 503")
                continue
            if reply.status_code != 200:
                self._failed(f"{host}: {reply.status_code} {reply.text}")
                return
            with self.lock:
                self.acknowledged[self.name(n)] = reply.json()["uuid"]
                self.sent_at[self.name(n)] = started
            return

    def _failed(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)


def test_losing_a_control_plane_host_loses_and_doubles_no_create(cloud: Cloud, token: str) -> None:
    # The host lost leads etcd: its loss costs the cluster an election.
    move_leader(ALL_MEMBERS, endpoint(LOST, "etcd"))
    wait_for(lambda: leader(ALL_MEMBERS) == endpoint(LOST, "etcd"))
    storm = Storm(token, cloud)
    with ThreadPoolExecutor(STORM_THREADS) as pool:
        sent: list[Future[None]] = [pool.submit(storm.create, n) for n in range(STORM)]
        wait_for(lambda: sum(future.done() for future in sent) >= KILL_AFTER)
        killed = cloud.hosts[LOST].kill()
        lost_at = time.monotonic()
        for future in sent:
            future.result()
    assert killed and not pids(netns(LOST))

    # Every create answered, once: each name is one instance, the one answered.
    assert len(storm.acknowledged) == STORM, storm.failures
    # The cluster still writes: creates sent after the loss were answered.
    assert any(at > lost_at for at in storm.sent_at.values()), "no create sent after the loss"
    with cloud.rest(CENTRE, token) as rest:
        listed = rest.get("/instances").json()
        named: dict[str, list[str]] = {}
        for instance in listed:
            named.setdefault(instance["name"], []).append(instance["uuid"])
        for name, uuid in storm.acknowledged.items():
            assert named.get(name) == [uuid], name
        for uuid in storm.acknowledged.values():
            instance = settled(rest, uuid)
            assert instance["state"] == "created", instance.get("error_message")
            # Its events are complete: its create audited once, by a survivor
            # it was sent to, and its node's `created`.
            hosts = recorded_created(rest, uuid)
            assert len(hosts[CREATE_AUDIT]) == 1 and hosts[CREATE_AUDIT][0] in STORM_GATEWAYS
            assert hosts[CREATED] == [instance["node"]]
        live = {
            instance["uuid"]
            for instance in rest.get("/instances").json()
            if instance["state"] != "deleted"
        }
    domains = cloud.domains()
    assert set(domains) - live == set(), "orphan domains"
    assert set(storm.acknowledged.values()) <= set(domains)

    # The host comes back: its member rejoins, and its gateway creates.
    cloud.rejoin(LOST)
    with cloud.rest(LOST, cloud.login(LOST)) as rest:
        reply = rest.post("/instances", json={**BOOT, "name": "after-rejoin"})
        assert reply.status_code == 200, reply.text
        instance = settled(rest, reply.json()["uuid"])
    assert instance["state"] == "created", instance.get("error_message")
