"""A rolling restart of every control-plane service, one at a time, under
steady REST load through all three gateways (`steady_load.py`): each role
is stopped with SIGTERM and started again as its systemd unit would be
(`launcher --role`), and the next waits until it serves again. The etcd
members go first (one of them leads: an election), then cp1's eventlog and
scheduler, the three apis and the three gateways.

Clients that retry a 503 or a lost connection once lose nothing: no read
fails, and no create fails but while the single scheduler restarts.

Known gap: the scheduler is single, on cp1 (leader election is another
branch's work). While it restarts, a create reaches no scheduler and the
api answers 503 with `Retry-After: 1`, so a create sent then fails even
after waiting that and retrying once. The outage is about 6 s on this
machine, and most of it is the stop: SIGTERM makes the scheduler refuse new
calls at once, but its exit waits out the whole 5 s grace of
`services/common/server.py` (`STOP_GRACE_SECONDS`), because the node
agents' placement streams stay open until the grace ends; it serves again
about 1 s after it starts. The test prints those figures and the failed
creates (2 of 2 sent at one every 2 s), and asserts that every failure is
a create sent during the scheduler's restart. The eventlog is single too
(its stop also waits out the grace, for the services' event streams), but
no request here waits for it: every service spools its events and
delivers them once it is back.
"""

from __future__ import annotations

from collections import Counter

from devmesh.cloud.cloud import Cloud
from devmesh.cloud.layout import CENTRE, CONTROL_PLANE, HOST_ROLES
from tests.e2e.test_vms import wait_for
from tests.multihost.steady_load import Load

STEADY_CREATES = 2
"""Creates answered after the last restart before the load stops."""
SINGLE = "scheduler"
"""The single role creates need (the known gap above)."""
ORDER = [
    *(("etcd", host) for host in CONTROL_PLANE),
    ("eventlog", CENTRE),
    ("scheduler", CENTRE),
    *(
        (role, host)
        for role in ("api", "gateway")
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

    # Reads never fail; creates fail only while the single scheduler restarts.
    assert [o for o in failed if o.kind == "read"] == []
    assert [o for o in failed if o.phase != f"{SINGLE}@{CENTRE}"] == []
    assert counts["steady", "create", "sent"] > 0
    # Every create answered made one instance, each name one.
    with cloud.rest(CENTRE, token) as rest:
        listed = rest.get("/instances").json()
    assert set(load.created.values()) <= {instance["uuid"] for instance in listed}
    names = Counter(instance["name"] for instance in listed)
    assert all(count == 1 for count in names.values()), names
