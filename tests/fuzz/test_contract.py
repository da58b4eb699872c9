"""Bad input generated from the contract: every route of `/openapi.json`,
fuzzed by schemathesis as three callers (a system token, another namespace's
token, no token), on a mesh of the fuzz's own (conftest.py).

Each case must answer no 5xx and conform to the document: a documented
status, headers and content type, a body matching its schema (each NDJSON
line, for streams). A caller without a token never succeeds where one is
needed. A refused write (a non-GET answered 4xx) changes nothing: etcd's
revision is read around it, and when something else moved it the system's
listings of instances, networks and namespaces must still be as before (read
again after each accepted write, once nothing is booting or being deleted).

Bounded for CI: per route and caller, `MAX_EXAMPLES` valid cases, as many
invalid ones, and as many valid ones aimed at real objects when its path
names some; Hypothesis derandomized (the same cases every run), generate
phase only (no shrinking: each finding is reported as first found), no
deadline, strings of Hypothesis' default small sizes. Schemathesis' pytest
wrapper is not used: it sets `Node._nodeid`, which pytest 9.2 lacks.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devmesh.mesh import Mesh
from tests.fuzz.figures import TALLIES, Tally

MAX_EXAMPLES = 10
"""Fuzzed cases per route, mode (valid / invalid data) and caller."""
STREAM_TIMEOUT = "1500m"
"""`Grpc-Timeout` of a stream: past the gateway's 1 s start wait, so a live
stream answers 200 and ends with a deadline line instead of running forever."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
NDJSON = "application/x-ndjson"
LISTINGS = ("/instances?all=true", "/networks?all=true", "/auth/namespaces")
"""What the system sees; a refused request must leave each one as it was."""
TRANSIENT = {"initial", "preflight", "creating", "delete-wait"}
"""States the mesh leaves on its own: after an accepted write, the listings
are read again once nothing is in one, so that an instance still booting or
being deleted is not taken for a change made by a later refused request."""
SETTLE_TIMEOUT = 60.0
"""Seconds the listings may take to settle on a loaded machine."""
FIRST_KEY_REFUSALS = {"no key specified", "illegal key name"}
"""A namespace create refused for its first key keeps the namespace, as
Shaken Fist's does (reference other-apis §3.3)."""

Snapshot = dict[str, list[Any]]


@pytest.fixture(scope="session")
def contract(fuzz_mesh: Mesh) -> schemathesis.BaseSchema:
    """The gateway's own document. The callers' tokens are the fuzz's to
    send: schemathesis makes up none."""
    config = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
    return schemathesis.openapi.from_url(f"{fuzz_mesh.gateway_url}/openapi.json", config=config)


class Observer:
    """The system's eye on the mesh: etcd's revision, and the listings."""

    def __init__(self, mesh: Mesh, token: str) -> None:
        self.etcd = httpx.Client(base_url=f"http://{mesh.address('etcd_client')}", timeout=30)
        self.gateway = httpx.Client(
            base_url=mesh.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def revision(self) -> int:
        """etcd's revision: unchanged, nothing was written."""
        reply = self.etcd.post("/v3/kv/range", json={"key": "AA=="})
        reply.raise_for_status()
        return int(reply.json()["header"]["revision"])

    def listings(self) -> Snapshot:
        """The system's listings, each as its JSON."""
        found: Snapshot = {}
        for path in LISTINGS:
            reply = self.gateway.get(path)
            assert reply.status_code == 200, reply.text
            found[path] = reply.json()
        return found

    def settled(self) -> Snapshot:
        """The listings once no object in them is in a `TRANSIENT` state."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while moving := transient(found := self.listings()):
            assert time.monotonic() < deadline, f"still moving after {SETTLE_TIMEOUT} s: {moving}"
            time.sleep(0.2)
        return found


def transient(value: Any) -> list[str]:
    """The `state` values of `TRANSIENT` anywhere in a JSON value."""
    if isinstance(value, list):
        return [state for item in value for state in transient(item)]
    if not isinstance(value, dict):
        return []
    own = [value["state"]] if value.get("state") in TRANSIENT else []
    return own + transient(list(value.values()))


@pytest.fixture(scope="session")
def observer(fuzz_mesh: Mesh, observer_token: str) -> Iterator[Observer]:
    watching = Observer(fuzz_mesh, observer_token)
    yield watching
    watching.gateway.close()
    watching.etcd.close()


@dataclass
class Run:
    """One caller's fuzz: its headers, figures and findings (the first case
    of each kind per operation), and the listings while known current."""

    headers: dict[str, str]
    targets: dict[str, list[str]]
    """Real values of path parameters, by name."""
    tally: Tally
    findings: dict[tuple[str, str], str] = field(default_factory=dict)
    listings: Snapshot | None = None

    def found(self, case: Case, failure: BaseException) -> None:
        if isinstance(failure, FailureGroup):  # its text has the curl command
            kind = "; ".join(sorted({f.title for f in failure.exceptions}))
            detail = str(failure)
        else:
            kind = str(failure).splitlines()[0]
            detail = f"{failure}\n{case.as_curl_command()}"
        if (case.operation.label, kind) not in self.findings:
            self.findings[case.operation.label, kind] = detail
            self.tally.findings += 1
        self.listings = None


def operations(contract: schemathesis.BaseSchema) -> list[APIOperation]:
    """Every operation of the document; a malformed one fails the test."""
    found = []
    for result in contract.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return found


def fuzz_operation(operation: APIOperation, run: Run, observer: Observer) -> None:
    """`MAX_EXAMPLES` cases of `operation` per branch: valid, invalid, and
    valid aimed at real objects when its path names some."""
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )
    branches = 2
    known = {
        p.name: run.targets[p.name] for p in operation.path_parameters if p.name in run.targets
    }
    if known:
        branches = 3
        aimed = [
            dict(zip(known, values, strict=True)) for values in itertools.product(*known.values())
        ]
        strategy |= st.sampled_from(aimed).flatmap(
            lambda path: operation.as_strategy(GenerationMode.POSITIVE, path_parameters=path)
        )

    @given(case=strategy)
    @settings(
        max_examples=branches * MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Case) -> None:
        try:
            send(case, run, observer)
        except (AssertionError, FailureGroup) as failure:
            run.found(case, failure)

    fuzz()


def send(case: Case, run: Run, observer: Observer) -> None:
    """One case: call, check the answer against the document and the rules."""
    headers = dict(run.headers)
    stream = is_stream(case)
    if stream:
        headers["Grpc-Timeout"] = STREAM_TIMEOUT
    mutating = case.method.upper() != "GET"
    if mutating:
        before = run.listings = run.listings or observer.listings()
        revision = observer.revision()
    response = case.call(headers=headers, timeout=30)
    run.tally.cases += 1
    run.tally.statuses[response.status_code] += 1
    if response.status_code == 200:
        run.tally.succeeded.add(case.operation.label)
    case.validate_response(response, checks=CHECKS, headers=headers)
    if stream:
        check_stream(case, response, case.operation.schema.raw_schema)
    if not run.headers and case.operation.definition.raw.get("security") != []:
        assert response.status_code >= 400, f"{case.as_curl_command()} succeeded without a token"
    if not mutating:
        return
    if not 400 <= response.status_code < 500:
        run.listings = observer.settled()
        return
    run.tally.refusals_checked += 1
    if observer.revision() != revision:
        run.listings = observer.listings()
        check_refusal_changed_nothing(case, response, before, run.listings)


def is_stream(case: Case) -> bool:
    # A WebSocket route documents 101, not 200.
    content = case.operation.definition.raw["responses"].get("200", {}).get("content", {})
    return NDJSON in content


def check_stream(case: Case, response: Response, document: dict[str, Any]) -> None:
    """A 200 NDJSON stream: every line matches the documented line schema."""
    if response.status_code != 200:
        return
    line_schema = case.operation.definition.raw["responses"]["200"]["content"][NDJSON]["schema"]
    validator = Draft202012Validator({**line_schema, "components": document["components"]})
    for line in response.content.splitlines():
        errors = [e.message for e in validator.iter_errors(json.loads(line))]
        assert not errors, f"{case.operation.label}: stream line {line!r}: {errors}"


def check_refusal_changed_nothing(
    case: Case, response: Response, before: Snapshot, after: Snapshot
) -> None:
    """A 4xx left the listings as they were, but for Shaken Fist's one
    documented exception (a namespace refused for its first key stays)."""
    if after == before:
        return
    message = response.json().get("message") if response.content else None
    if case.operation.label == "POST /auth/namespaces" and message in FIRST_KEY_REFUSALS:
        name = case.body.get("namespace") if isinstance(case.body, dict) else None
        kept = [ns for ns in after["/auth/namespaces"] if ns["name"] != name]
        if {**after, "/auth/namespaces": kept} == before:
            return
    changed = [path for path in LISTINGS if before[path] != after[path]]
    raise AssertionError(
        f"{case.operation.label} answered {response.status_code} but changed {changed}:\n"
        f"{case.as_curl_command()}\n{response.text[:500]}"
    )


@pytest.mark.parametrize("who", ["system", "tenant", "anonymous"])
def test_contract(
    who: str,
    contract: schemathesis.BaseSchema,
    observer: Observer,
    targets: dict[str, dict[str, list[str]]],
    request: pytest.FixtureRequest,
) -> None:
    headers = {}
    if who != "anonymous":
        headers["Authorization"] = f"Bearer {request.getfixturevalue(f'{who}_token')}"
    run = Run(headers, targets[who], TALLIES.setdefault(who, Tally()))
    # Deletes last, so the objects aimed at live through the other routes.
    for operation in sorted(operations(contract), key=lambda op: op.method == "delete"):
        fuzz_operation(operation, run, observer)
    assert not run.findings, "\n\n".join(
        f"{label}: {detail}" for (label, _), detail in sorted(run.findings.items())
    )
