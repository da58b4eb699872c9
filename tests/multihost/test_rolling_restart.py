"""A rolling restart of every control-plane service, one at a time, under
steady REST load through all three gateways (`steady_load.py`): each role
is stopped with SIGTERM and started again as its systemd unit would be
(`launcher --role`), and the next waits until it serves again. The etcd
members go first (one of them leads: an election), then the three eventlog
replicas (each emitter streaming to the one stopping moves to another), the
three schedulers (one of them leads: it gives the leader key up as it
stops, and another replica takes it), the three apis and the three
gateways.

Clients that retry a 503 or a lost connection once lose nothing: no read
and no create fails, whichever service restarts. The test prints, for each
restart, how long the stop and the start took and what was sent meanwhile.

No request here waits for the eventlog: every service spools its events
and delivers them to whichever replica serves.
"""

from __future__ import annotations

from collections import Counter

from devmesh.cloud.cloud import Cloud
from devmesh.cloud.layout import CENTRE, CONTROL_PLANE, HOST_ROLES
from tests.e2e.test_vms import wait_for
from tests.multihost.steady_load import Load

STEADY_CREATES = 2
"""Creates answered after the last restart before the load stops."""
ORDER = [
    *(("etcd", host) for host in CONTROL_PLANE),
    *(
        (role, host)
        for role in ("eventlog", "scheduler", "api", "gateway")
        for host in CONTROL_PLANE
        if role in HOST_ROLES[host]
    ),
]
"""(role, host) in the order they restart."""


def test_a_rolling_restart_fails_no_request_that_retries_once(cloud: Cloud, token: str) -> None:
    load = Load(cloud, token)
    load.start()
    took = {}
    try:
        wait_for(lambda: len(load.outcomes) > 20)
        for role, host in ORDER:
            load.phase = f"{role}@{host}"
            took[load.phase] = cloud.hosts[host].restart(role)
        load.phase = "steady"
        wait_for(lambda: load.counts()["steady", "create", "sent"] >= STEADY_CREATES)
    finally:
        load.stop()

    counts = load.counts()
    print("rolling restart: what restarted, seconds to stop and then to serve,")
    print("  reads and creates sent meanwhile (sent/retried/failed after the retry)")
    for phase in ["steady", *took]:
        figures = "  ".join(
            f"{kind} {counts[phase, kind, 'sent']}/{counts[phase, kind, 'retried']}"
            f"/{counts[phase, kind, 'failed']}"
            for kind in ("read", "create")
        )
        seconds = "{:5.1f} s {:5.1f} s".format(*took[phase]) if phase in took else " " * 14
        print(f"  {phase:<16}{seconds}  {figures}")
    failed = load.failures()
    print(f"  failed after one retry: {dict(Counter((o.phase, o.answers) for o in failed))}")

    # Nothing fails after one retry: no read, no create.
    assert failed == []
    assert counts["steady", "create", "sent"] > 0
    # Every create answered made one instance, each name one.
    with cloud.rest(CENTRE, token) as rest:
        listed = rest.get("/instances").json()
    assert set(load.created.values()) <= {instance["uuid"] for instance in listed}
    names = Counter(instance["name"] for instance in listed)
    assert all(count == 1 for count in names.values()), names
