"""The isolation matrix's tables cover every route the descriptors declare. Pure.

A new http rule fails here until tests/e2e/isolation.py classifies its route
and can fill its path, so its isolation cases run in tests/e2e/test_isolation.py.
"""

from __future__ import annotations

from sfmesh.v1 import options_pb2

from services.api_gateway.routes import Route
from tests.e2e.isolation import (
    CALLERS,
    KINDS,
    MAY_BE_SERVED,
    ROUTES,
    SERVED,
    TOKEN_EXCHANGE,
    WEBSOCKET,
    Victim,
    access,
    key,
    misjudged,
    requests,
    routes,
    takes_raw_body,
)

SAMPLE = Victim(
    namespace="victim",
    instance={"uuid": "i-uuid", "name": "vm", "interfaces": [{"uuid": "n-uuid", "ipv4": "ip"}]},
    network={"uuid": "net-uuid", "name": "net"},
    node="node",
    spare_node="spare",
    disk_base="http://127.0.0.1/missing",
    netblock="10.0.0.0/24",
    artifact={"uuid": "a-uuid", "name": "disk.qcow2"},
    blob={"uuid": "b-uuid", "sha512": "ab" * 64},
    upload={"uuid": "u-uuid"},
    agent_operation={"uuid": "op-uuid"},
)


def _route(method: str, source: str) -> Route:
    (found,) = [route for route in routes() if key(route) == (method, source)]
    return found


def test_every_route_is_classified() -> None:
    unclassified = sorted(key(route) for route in routes() if key(route) not in ROUTES)
    assert not unclassified, f"classify these routes in tests/e2e/isolation.py: {unclassified}"


def test_every_classified_route_exists() -> None:
    stale = set(ROUTES) - {key(route) for route in routes()}
    assert not stale, f"no such routes: {sorted(stale)}"


def test_every_kind_is_known_and_names_every_caller_with_a_token() -> None:
    for route_key, rule in ROUTES.items():
        assert rule.kind in (TOKEN_EXCHANGE, WEBSOCKET) or rule.kind in KINDS, route_key
    for kind, outcomes in KINDS.items():
        assert set(outcomes) == {"other", "trusted", "system"}, kind
        served = {caller for caller, outcome in outcomes.items() if outcome == SERVED}
        assert served <= set(MAY_BE_SERVED), f"{kind}: give {served} marks of their own"


def test_only_anonymous_routes_are_token_exchanges() -> None:
    for route in routes():
        anonymous = access(route.method) == options_pb2.ACCESS_ANONYMOUS
        assert anonymous == (ROUTES[key(route)].kind in (TOKEN_EXCHANGE, WEBSOCKET)), key(route)
        assert access(route.method) != options_pb2.ACCESS_INTERNAL, key(route)


def test_every_path_variable_is_filled() -> None:
    for route in routes():
        assert route.body in ("", "*") or takes_raw_body(route), (
            f"{key(route)}: body {route.body!r} is neither JSON nor raw"
        )
        for caller in CALLERS:
            made = requests(route, caller, SAMPLE)
            assert made, key(route)
            for request in made:
                assert "{" not in request.path, request.path


def test_instance_and_network_refs_are_tried_by_uuid_and_by_name() -> None:
    (get,) = [route for route in routes() if key(route) == ("GET", "/instances/{ref}")]
    assert [r.path for r in requests(get, "other", SAMPLE)] == [
        "/instances/vm",
        "/instances/i-uuid",
    ]


def test_artifacts_are_tried_by_name_except_by_system_and_labels_by_path() -> None:
    get = _route("GET", "/artifacts/{ref}")
    assert [r.path for r in requests(get, "other", SAMPLE)] == [
        "/artifacts/disk.qcow2",
        "/artifacts/a-uuid",
    ]
    assert [r.path for r in requests(get, "system", SAMPLE)] == ["/artifacts/a-uuid"]
    spanning = _route("GET", "/label/{label_name=*/*}")
    assert [r.path for r in requests(spanning, "other", SAMPLE)] == ["/label/victim/iso-label"]
    assert [r.path for r in requests(_route("GET", "/label/{label_name}"), "other", SAMPLE)] == [
        "/label/iso-label"
    ]


def test_the_judge_refuses_what_isolation_forbids() -> None:
    get = _route("GET", "/instances/{ref}")
    assert misjudged(get, "other", 404, "instance not found") is None
    assert misjudged(get, "other", 200, None)
    assert misjudged(get, "trusted", 404, "namespace not found")
    assert misjudged(get, "none", 401, "Missing Authorization Header") is None
    assert misjudged(get, "expired", 401, "Missing Authorization Header")
    assert misjudged(get, "system", 200, None) is None
    assert misjudged(get, "system", 404, "instance not found")
    assert misjudged(_route("POST", "/instances/{ref}/poweron"), "system", 406, "x") is None
    listing = _route("GET", "/instances")
    assert misjudged(listing, "other", 200, None) is None
    assert misjudged(listing, "other", 404, "instance not found")
    keys = _route("GET", "/auth/namespaces/{namespace}/keys")
    assert misjudged(keys, "trusted", 200, None) is None
    assert misjudged(keys, "other", 404, "namespace not found") is None
    assert misjudged(_route("POST", "/auth"), "system", 401, "unauthorized") is None
