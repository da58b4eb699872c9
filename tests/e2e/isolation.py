"""The isolation matrix's tables: what each kind of caller gets on every REST
route, and how each route is aimed at a victim namespace's objects. Pure.

The routes are the gateway's own: `build_routes` over every service the api
serves. Each must be classified in ROUTES (its kind says what every
caller gets, from the instances reference §1.1 and §5.5 and the other-apis
reference §1 and §3), and each path variable must have a filler in PATH,
keyed by the longest template prefix that fits. Body fields are filled from
BODY the same way; a field no filler knows is left out. A route missing from
ROUTES or a path variable no filler knows fails
tests/unit/test_isolation_table.py, so a new http rule cannot ship without
its isolation cases.
"""

from __future__ import annotations

import importlib
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sfmesh.v1 import options_pb2

from services.api_gateway.routes import Route, build_routes
from services.api_gateway.types import MethodDescriptor, ServiceDescriptor

GEN = Path(__file__).resolve().parents[2] / "gen" / "sfmesh" / "v1"

TOKENLESS = ("none", "expired", "revoked")
"""Callers without a valid token: none, an expired one, one of a deleted key."""
CALLERS = (*TOKENLESS, "other", "trusted", "system")
"""Every kind of caller, in the order the matrix runs them (system last: it
may destroy the victim)."""


@dataclass(frozen=True)
class Refused:
    """The caller is turned away with this status and error message, and the
    answer holds nothing of the victim's that the request did not."""

    status: int
    message: str


@dataclass(frozen=True)
class Hidden:
    """The caller is answered 200, with nothing of the victim's in it."""


@dataclass(frozen=True)
class Served:
    """The caller passes every access check (what follows depends on the
    object: 406 for a power change of an instance in error, and the like)."""


Outcome = Refused | Hidden | Served
HIDDEN, SERVED = Hidden(), Served()
LABEL = "iso-label"
"""The victim's label (system makes it as `<victim>/iso-label`)."""

TOKEN_REFUSALS = {
    "none": Refused(401, "Missing Authorization Header"),
    "expired": Refused(401, "Signature has expired"),
    "revoked": Refused(401, "token revoked"),
}
"""What a caller without a valid token gets on every route but POST /auth."""


def _object(message: str) -> dict[str, Outcome]:
    """An object of the victim's: its namespace and system only; others are
    told it does not exist, and trust does not help."""
    refused = Refused(404, message)
    return {"other": refused, "trusted": refused, "system": SERVED}


def _admin(message: str) -> dict[str, Outcome]:
    refused = Refused(401, message)
    return {"other": refused, "trusted": refused, "system": SERVED}


KINDS: dict[str, dict[str, Outcome]] = {
    "instance": _object("instance not found"),
    "network": _object("network not found"),
    "agent operation": _object("agent operation not found"),
    "interface": _object("interface not found"),
    # other-apis §3.1: trusted namespaces read and manage keys, metadata, trusts.
    "namespace": {
        "other": Refused(404, "namespace not found"),
        "trusted": SERVED,
        "system": SERVED,
    },
    "system only": _admin("unauthorized"),
    # Lists filter by namespace; trust is not consulted (instances §1.3, other-apis §1).
    "listing": {"other": HIDDEN, "trusted": HIDDEN, "system": SERVED},
    # other-apis §3.4: a namespace is listed to those it trusts.
    "namespace listing": {"other": HIDDEN, "trusted": SERVED, "system": SERVED},
    # instances §4.1: creating in another namespace needs its trust.
    "create instance in": {
        "other": Refused(404, "namespace not found"),
        "trusted": SERVED,
        "system": SERVED,
    },
    # other-apis §1.2 step 6: trust does not help for networks.
    "create network in": _admin("only admins can create resources in a different namespace"),
    # instances §8, other-apis §1.8.
    "delete all in": _admin("you cannot delete other namespaces"),
    # artifacts §2.5, §11 Q1: reads by list visibility, writes by ownership;
    # both pass when the owner trusts the caller.
    "artifact": {
        "other": Refused(404, "artifact not found"),
        "trusted": SERVED,
        "system": SERVED,
    },
    "artifact listing": {"other": HIDDEN, "trusted": SERVED, "system": SERVED},
    # artifacts §3.3 (Q3), §5 (Q2): a target namespace must trust the caller.
    "in trusting namespace": {
        "other": Refused(404, "namespace not found"),
        "trusted": SERVED,
        "system": SERVED,
    },
    # A plain label is the caller's own: the victim's is never reached so.
    "own label": {
        "other": Refused(404, f"label {LABEL} not found"),
        "trusted": Refused(404, f"label {LABEL} not found"),
        "system": Refused(404, f"label {LABEL} not found"),
    },
    # ... and a new one needs a blob the caller reaches (the victim's, through its label).
    "own new label": {
        "other": Refused(404, "blob not found"),
        "trusted": SERVED,
        "system": SERVED,
    },
    # issue 13: a blob is reached through artifacts the caller sees.
    "blob": {"other": Refused(404, "blob not found"), "trusted": SERVED, "system": SERVED},
    # artifacts §4 (Q3): an upload is its namespace's own; trust does not help.
    "upload": _object("upload not found"),
    # Anyone starts an upload of its own: nothing of the victim's in it.
    "new upload": {"other": HIDDEN, "trusted": HIDDEN, "system": SERVED},
    # artifacts §3.4 (Q3): the target namespace must trust the caller, and
    # the upload must be the caller's own.
    "convert upload in": {
        "other": Refused(404, "namespace not found"),
        "trusted": Refused(404, "upload not found"),
        "system": SERVED,
    },
    # artifacts §6.1 (Q15): 403 rather than upstream's 401.
    "blob listing": {
        "other": Refused(403, "only the system namespace may list blobs"),
        "trusted": Refused(403, "only the system namespace may list blobs"),
        "system": SERVED,
    },
}
TOKEN_EXCHANGE = "token exchange"
"""POST /auth (ACCESS_ANONYMOUS): a wrong key is 401 whoever asks."""
WEBSOCKET = "websocket"
"""GET /console/ws (ACCESS_ANONYMOUS: its ticket is the credential): asked
without an upgrade, 426 whoever asks. The tickets' own isolation (another
namespace's, an expired one) is tests/e2e/test_browser_console.py's."""


@dataclass(frozen=True)
class Rule:
    """A route's classification."""

    kind: str
    """A key of KINDS, TOKEN_EXCHANGE or WEBSOCKET."""
    last: int = 0
    """Run after the routes of a lower rank: 1 ends a victim object, 2 every
    object of the victim namespace, 3 the namespace."""


ROUTES: dict[tuple[str, str], Rule] = {
    ("POST", "/auth"): Rule(TOKEN_EXCHANGE),
    # namespaces, keys, trusts, metadata (other-apis §3.0)
    ("GET", "/auth/namespaces"): Rule("namespace listing"),
    ("POST", "/auth/namespaces"): Rule("system only"),
    ("GET", "/auth/namespaces/{namespace}"): Rule("namespace"),
    ("DELETE", "/auth/namespaces/{namespace}"): Rule("system only", last=3),
    ("GET", "/auth/namespaces/{namespace}/keys"): Rule("namespace"),
    ("POST", "/auth/namespaces/{namespace}/keys"): Rule("namespace"),
    ("PUT", "/auth/namespaces/{namespace}/keys/{key_name}"): Rule("system only"),
    ("DELETE", "/auth/namespaces/{namespace}/keys/{key_name}"): Rule("namespace"),
    ("POST", "/auth/namespaces/{namespace}/trust"): Rule("namespace"),
    ("DELETE", "/auth/namespaces/{namespace}/trust/{external_namespace}"): Rule("namespace"),
    ("GET", "/auth/namespaces/{namespace}/metadata"): Rule("namespace"),
    ("POST", "/auth/namespaces/{namespace}/metadata"): Rule("namespace"),
    ("PUT", "/auth/namespaces/{namespace}/metadata/{key}"): Rule("namespace"),
    ("DELETE", "/auth/namespaces/{namespace}/metadata/{key}"): Rule("namespace"),
    # instances
    ("GET", "/instances"): Rule("listing"),
    ("GET", "/instances:watch"): Rule("listing"),
    ("POST", "/instances"): Rule("create instance in"),
    ("DELETE", "/instances"): Rule("delete all in", last=2),
    ("GET", "/instances/{ref}"): Rule("instance"),
    ("DELETE", "/instances/{ref}"): Rule("instance", last=1),
    ("GET", "/instances/{ref}:watch"): Rule("instance"),
    ("GET", "/instances/{ref}/interfaces"): Rule("instance"),
    # guest-access §6: the victim's instance is in error, so system gets 409
    ("POST", "/instances/{ref}/interfaces"): Rule("instance"),
    ("GET", "/instances/{ref}/events"): Rule("instance"),
    ("GET", "/instances/{ref}/events:watch"): Rule("instance"),
    ("GET", "/instances/{ref}/metadata"): Rule("instance"),
    ("POST", "/instances/{ref}/metadata"): Rule("instance"),
    ("PUT", "/instances/{ref}/metadata/{key}"): Rule("instance"),
    ("DELETE", "/instances/{ref}/metadata/{key}"): Rule("instance"),
    ("GET", "/instances/{ref}/consoledata"): Rule("instance"),
    ("DELETE", "/instances/{ref}/consoledata"): Rule("instance"),
    ("GET", "/instances/{ref}/vdiconsolehelper"): Rule("instance"),
    ("GET", "/instances/{ref}/screenshot"): Rule("instance"),
    ("POST", "/instances/{ref}/consoleticket"): Rule("instance"),
    ("GET", "/console/ws"): Rule(WEBSOCKET),
    # guest-access §5.6: the victim's instance is in error, so system gets 409
    ("POST", "/instances/{ref}/agent/execute"): Rule("instance"),
    ("POST", "/instances/{ref}/agent/get"): Rule("instance"),
    ("POST", "/instances/{ref}/agent/put"): Rule("instance"),
    ("GET", "/instances/{ref}/agentoperations"): Rule("instance"),
    ("GET", "/agentoperations/{uuid}"): Rule("agent operation"),
    ("DELETE", "/agentoperations/{uuid}"): Rule("agent operation", last=1),
    ("POST", "/instances/{ref}/rebootsoft"): Rule("instance"),
    ("POST", "/instances/{ref}/reboothard"): Rule("instance"),
    ("POST", "/instances/{ref}/poweroff"): Rule("instance"),
    ("POST", "/instances/{ref}/poweron"): Rule("instance"),
    ("POST", "/instances/{ref}/pause"): Rule("instance"),
    ("POST", "/instances/{ref}/unpause"): Rule("instance"),
    # artifacts §7: owner or system; trusts do not count.
    ("POST", "/instances/{ref}/snapshot"): Rule("instance"),
    ("GET", "/instances/{ref}/snapshot"): Rule("instance"),
    # networks (other-apis §1.0)
    ("GET", "/networks"): Rule("listing"),
    ("POST", "/networks"): Rule("create network in"),
    ("DELETE", "/networks"): Rule("delete all in", last=2),
    ("GET", "/networks/{ref}"): Rule("network"),
    ("DELETE", "/networks/{ref}"): Rule("network", last=1),
    ("GET", "/networks/{ref}/addresses"): Rule("network"),
    ("GET", "/networks/{ref}/events"): Rule("network"),
    ("GET", "/networks/{ref}/interfaces"): Rule("network"),
    ("GET", "/networks/{ref}/ping/{address}"): Rule("network"),
    ("GET", "/networks/{ref}/metadata"): Rule("network"),
    ("POST", "/networks/{ref}/metadata"): Rule("network"),
    ("PUT", "/networks/{ref}/metadata/{key}"): Rule("network"),
    ("DELETE", "/networks/{ref}/metadata/{key}"): Rule("network"),
    # interfaces (other-apis §2)
    ("GET", "/interfaces/{uuid}"): Rule("interface"),
    ("GET", "/interfaces/{uuid}/metadata"): Rule("interface"),
    ("POST", "/interfaces/{uuid}/metadata"): Rule("interface"),
    ("PUT", "/interfaces/{uuid}/metadata/{key}"): Rule("interface"),
    ("DELETE", "/interfaces/{uuid}/metadata/{key}"): Rule("interface"),
    ("POST", "/interfaces/{uuid}/float"): Rule("interface"),
    ("POST", "/interfaces/{uuid}/defloat"): Rule("interface"),
    # nodes (guest-access §7): not the victim's, but system only; system
    # acts on a spare node (`Victim.spare_node`), others on the mesh's own
    ("GET", "/nodes"): Rule("system only"),
    ("GET", "/nodes/{node}"): Rule("system only"),
    ("DELETE", "/nodes/{node}"): Rule("system only", last=1),
    ("GET", "/nodes/{node}/events"): Rule("system only"),
    ("GET", "/nodes/{node}/metadata"): Rule("system only"),
    ("POST", "/nodes/{node}/metadata"): Rule("system only"),
    ("PUT", "/nodes/{node}/metadata/{key}"): Rule("system only"),
    ("DELETE", "/nodes/{node}/metadata/{key}"): Rule("system only"),
    ("GET", "/nodes/{node}/processmetrics"): Rule("system only"),
    # admin (guest-access §8): the cluster's, system only
    ("GET", "/admin/resources"): Rule("system only"),
    # artifacts (artifacts §3)
    ("GET", "/artifacts"): Rule("artifact listing"),
    ("POST", "/artifacts"): Rule("in trusting namespace"),
    ("DELETE", "/artifacts"): Rule("delete all in", last=2),
    ("GET", "/artifacts/{ref}"): Rule("artifact"),
    ("DELETE", "/artifacts/{ref}"): Rule("artifact", last=1),
    ("GET", "/artifacts/{ref}/versions"): Rule("artifact"),
    ("POST", "/artifacts/{ref}/versions"): Rule("artifact"),
    ("DELETE", "/artifacts/{ref}/versions/{version_id}"): Rule("artifact"),
    ("POST", "/artifacts/{ref}/share"): Rule("artifact"),
    ("POST", "/artifacts/{ref}/unshare"): Rule("artifact"),
    ("GET", "/artifacts/{ref}/metadata"): Rule("artifact"),
    ("POST", "/artifacts/{ref}/metadata"): Rule("artifact"),
    ("PUT", "/artifacts/{ref}/metadata/{key}"): Rule("artifact"),
    ("DELETE", "/artifacts/{ref}/metadata/{key}"): Rule("artifact"),
    ("GET", "/artifacts/{ref}/events"): Rule("artifact"),
    # labels (artifacts §5): a caller's own labels run before its new one
    # (rank 1), which reaches the victim's blob through the victim's label,
    # deleted only after that (rank 2).
    ("POST", "/label/{label_name}"): Rule("own new label", last=1),
    ("GET", "/label/{label_name}"): Rule("own label"),
    ("DELETE", "/label/{label_name}"): Rule("own label"),
    ("POST", "/label/{label_name=*/*}"): Rule("in trusting namespace"),
    ("GET", "/label/{label_name=*/*}"): Rule("in trusting namespace"),
    ("DELETE", "/label/{label_name=*/*}"): Rule("in trusting namespace", last=2),
    # blobs (artifacts §6)
    ("GET", "/blobs"): Rule("blob listing"),
    ("GET", "/blobs/{uuid}"): Rule("blob"),
    ("GET", "/blob_checksums/{algorithm}/{hash}"): Rule("artifact listing"),
    ("GET", "/blobs/{uuid}/metadata"): Rule("blob"),
    ("POST", "/blobs/{uuid}/metadata"): Rule("blob"),
    ("PUT", "/blobs/{uuid}/metadata/{key}"): Rule("blob"),
    ("DELETE", "/blobs/{uuid}/metadata/{key}"): Rule("blob"),
    ("GET", "/blobs/{uuid}/data"): Rule("blob"),
    ("GET", "/blobs/{uuid}/events"): Rule("blob"),
    ("GET", "/blobs/{uuid}/checksum/{algorithm}"): Rule("blob"),
    # uploads (artifacts §4, §3.4): the conversion ends the victim's upload
    ("POST", "/upload"): Rule("new upload"),
    ("POST", "/upload/{upload_uuid}"): Rule("upload"),
    ("POST", "/upload/{upload_uuid}/truncate/{offset}"): Rule("upload"),
    ("POST", "/artifacts/upload/{artifact_name}"): Rule("convert upload in", last=1),
}


@dataclass(frozen=True)
class Victim:
    """The victim namespace's objects: what the fillers aim at."""

    namespace: str
    instance: dict[str, Any]
    """Its instance's view; its first NIC is on `network`."""
    network: dict[str, Any]
    node: str
    """The node its instance is on: the mesh's own."""
    spare_node: str
    """A node record made for system's cases, which delete it."""
    disk_base: str
    """A disk base that never fetches: instances made here end in `error`."""
    netblock: str
    """A free netblock for networks made here."""
    artifact: dict[str, Any]
    """The image artifact its instance's base made."""
    blob: dict[str, Any]
    """A blob its label `<namespace>/LABEL` holds."""
    upload: dict[str, Any]
    """An upload it started, with a few bytes in it."""
    agent_operation: dict[str, Any]
    """An agent operation of its instance (written into etcd: the instance
    never runs)."""

    @property
    def interface(self) -> dict[str, Any]:
        nic: dict[str, Any] = self.instance["interfaces"][0]
        return nic


MAY_BE_SERVED = ("trusted", "system")
"""The callers some victim route serves."""


def mark(namespace: str, what: str, caller: str) -> str:
    """The name of the victim's `what` (key, metadata key, trust) that `caller`
    acts on: each caller that may be served has its own, so what it changes
    leaves the next one's target in place; the others share one, which their
    refused changes leave in place too. (Few keys: POST /auth with a wrong
    key checks each with bcrypt.)"""
    return f"{namespace}-{what}-{caller if caller in MAY_BE_SERVED else 'refused'}"


def marked(namespace: str, what: str) -> list[str]:
    """Every name `mark` gives the victim's `what`."""
    return sorted({mark(namespace, what, caller) for caller in CALLERS})


Filler = Callable[[Victim, str], list[Any]]
"""(victim, caller) -> the values to try (each makes a case)."""

PATH: dict[tuple[str, str], Filler] = {
    # By name first: a deleted object is found by UUID only.
    ("/instances/", "ref"): lambda v, c: [v.instance["name"], v.instance["uuid"]],
    ("/networks/", "ref"): lambda v, c: [v.network["name"], v.network["uuid"]],
    ("/interfaces/", "uuid"): lambda v, c: [v.interface["uuid"]],
    ("/networks/{ref}/ping/", "address"): lambda v, c: [v.interface["ipv4"]],
    ("/auth/namespaces/", "namespace"): lambda v, c: [v.namespace],
    ("/auth/namespaces/{namespace}/keys/", "key_name"): lambda v, c: [mark(v.namespace, "key", c)],
    ("/auth/namespaces/{namespace}/trust/", "external_namespace"): lambda v, c: [
        mark(v.namespace, "trust", c)
    ],
    ("", "key"): lambda v, c: [mark(v.namespace, "md", c)],
    ("/nodes/", "node"): lambda v, c: [v.spare_node if c == "system" else v.node],
    # By name too, but not for system: the trusted caller's delete (rank 1)
    # leaves the artifact found by UUID only.
    ("/artifacts/", "ref"): lambda v, c: (
        [v.artifact["uuid"]] if c == "system" else [v.artifact["name"], v.artifact["uuid"]]
    ),
    ("/artifacts/{ref}/versions/", "version_id"): lambda v, c: [1],
    ("/label/", "label_name"): lambda v, c: [LABEL],
    ("/label/{label_name=", "label_name"): lambda v, c: [f"{v.namespace}/{LABEL}"],
    ("/blobs/", "uuid"): lambda v, c: [v.blob["uuid"]],
    ("/blobs/{uuid}/checksum/", "algorithm"): lambda v, c: ["sha512"],
    ("/blob_checksums/", "algorithm"): lambda v, c: ["sha512"],
    ("/blob_checksums/{algorithm}/", "hash"): lambda v, c: [v.blob["sha512"]],
    ("/upload/", "upload_uuid"): lambda v, c: [v.upload["uuid"]],
    ("/agentoperations/", "uuid"): lambda v, c: [v.agent_operation["uuid"]],
    ("/upload/{upload_uuid}/truncate/", "offset"): lambda v, c: [1],
    ("/artifacts/upload/", "artifact_name"): lambda v, c: [f"iso-upload-by-{c}"],
}
"""Path variables, keyed by (template prefix, variable)."""

BODY: dict[tuple[str, str], Filler] = {
    ("", "namespace"): lambda v, c: [v.namespace],
    ("", "key"): lambda v, c: [mark(v.namespace, "md", c)],
    ("", "value"): lambda v, c: [f"set by {c}"],
    ("", "key_name"): lambda v, c: [mark(v.namespace, "key", c)],
    ("", "confirm"): lambda v, c: [True],
    ("", "all"): lambda v, c: [True],
    ("/auth", "key"): lambda v, c: ["not-the-key"],
    ("/auth/namespaces/{namespace}/metadata", "key"): lambda v, c: [mark(v.namespace, "md", c)],
    ("/auth/namespaces/{namespace}/keys", "key"): lambda v, c: [f"secret of {c}"],
    ("/auth/namespaces/{namespace}/trust", "external_namespace"): lambda v, c: [
        mark(v.namespace, "new-trust", c)
    ],
    ("/instances", "name"): lambda v, c: [f"{v.namespace}-by-{c}"],
    ("/instances", "cpus"): lambda v, c: [1],
    ("/instances", "memory"): lambda v, c: [256],
    ("/instances", "disk"): lambda v, c: [[{"size": 1, "base": v.disk_base}]],
    ("/instances/{ref}/interfaces", "network"): lambda v, c: [
        {"network_uuid": v.network["uuid"], "macaddress": None, "model": "virtio", "float": False}
    ],
    ("/instances/{ref}/agent/", "command_line"): lambda v, c: ["true"],
    ("/instances/{ref}/agent/", "path"): lambda v, c: ["/etc/hostname"],
    ("/instances/{ref}/agent/", "blob_uuid"): lambda v, c: [v.blob["uuid"]],
    ("/instances/{ref}/agent/", "mode"): lambda v, c: [33188],
    ("/networks", "name"): lambda v, c: [f"{v.namespace}-by-{c}"],
    ("/networks", "netblock"): lambda v, c: [v.netblock],
    ("/artifacts", "url"): lambda v, c: [v.disk_base],
    ("/label/", "blob_uuid"): lambda v, c: [v.blob["uuid"]],
    ("/artifacts/upload/", "upload_uuid"): lambda v, c: [v.upload["uuid"]],
}
"""Other request fields, sent in a JSON body on every method (sfmesh reads
bodies on GET and DELETE as Shaken Fist does), keyed by (template prefix,
field); the most specific prefix wins. Valid values, so a 400 cannot hide a
missing 404."""

_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")


def filler(table: dict[tuple[str, str], Filler], source: str, field: str) -> Filler | None:
    """The filler of `field` whose prefix is the longest that `source` starts with."""
    fits = [prefix for prefix, name in table if name == field and source.startswith(prefix)]
    return table[max(fits, key=len), field] if fits else None


API_SERVER = Path(__file__).resolve().parents[2] / "services" / "api" / "server.py"


@cache
def contracts() -> tuple[ServiceDescriptor, ...]:
    """Every service of the contracts in gen/sfmesh/v1."""
    found: list[ServiceDescriptor] = []
    for module in sorted(GEN.glob("*_pb2.py")):
        loaded = importlib.import_module(f"sfmesh.v1.{module.stem}")
        found.extend(loaded.DESCRIPTOR.services_by_name.values())
    return tuple(found)


@cache
def services() -> tuple[ServiceDescriptor, ...]:
    """The contracts the api registers (named in services/api/server.py):
    the gateway builds routes only from what its upstream serves, so a
    contract not served yet has no routes and no isolation cases."""
    names = set(re.findall(r'"(sfmesh\.v1\.\w+)"', API_SERVER.read_text()))
    assert "sfmesh.v1.InstanceService" in names, f"no services found in {API_SERVER}"
    return tuple(service for service in contracts() if service.full_name in names)


@cache
def routes() -> tuple[Route, ...]:
    """Every REST route the descriptors declare, as the gateway builds them."""
    return tuple(build_routes(services()).routes)


def access(method: MethodDescriptor) -> int:
    """The RPC's `(sfmesh.v1.access)`; unset means ACCESS_USER."""
    value: int = method.GetOptions().Extensions[options_pb2.access]  # type: ignore[index]
    return value or options_pb2.ACCESS_USER


def key(route: Route) -> tuple[str, str]:
    return route.http_method, route.template.source


def rule(route: Route) -> Rule:
    return ROUTES[key(route)]


def expected(route: Route, caller: str) -> Outcome:
    """What `caller` must get on `route`."""
    kind = rule(route).kind
    if kind == TOKEN_EXCHANGE:
        return Refused(401, "unauthorized")
    if kind == WEBSOCKET:
        return Refused(426, "/console/ws is a WebSocket: ask to upgrade")
    if caller in TOKEN_REFUSALS:
        return TOKEN_REFUSALS[caller]
    return KINDS[kind][caller]


def refusals(route: Route) -> set[tuple[int, str]]:
    """Every refusal the route's kind gives anyone: what a served caller must not get."""
    found = {(r.status, r.message) for r in TOKEN_REFUSALS.values()}
    kind = KINDS.get(rule(route).kind, {})
    return found | {(o.status, o.message) for o in kind.values() if isinstance(o, Refused)}


def misjudged(route: Route, caller: str, status: int, error: str | None) -> str | None:
    """What is wrong with answering `caller` on `route` with `status` and the
    error message `error`, or None when that is the answer it must get."""
    outcome = expected(route, caller)
    if isinstance(outcome, Refused):
        if (status, error) != (outcome.status, outcome.message):
            return f"expected {outcome.status} {outcome.message!r}"
    elif isinstance(outcome, Hidden):
        if status != 200:
            return "expected 200 with nothing of the victim's"
    elif status == 401 or status >= 500 or (status, error) in refusals(route):
        return "expected to be served"
    return None


RAW_BODY = b"isolation bytes"
"""What a raw-body route (an upload's append) is sent."""


def takes_raw_body(route: Route) -> bool:
    """Whether the route's body is raw bytes (a `google.api.HttpBody` field)."""
    if route.body in ("", "*"):
        return False
    field = route.method.input_type.fields_by_name[route.body]
    return field.message_type is not None and field.message_type.full_name == "google.api.HttpBody"


def path_variables(route: Route) -> list[str]:
    return [variable.field_path for variable in route.template.variables]


def body_fields(route: Route) -> list[str]:
    """The request fields not bound by the path."""
    if takes_raw_body(route):
        return []
    bound = set(path_variables(route))
    return [f.name for f in route.method.input_type.fields if f.name not in bound]


@dataclass(frozen=True)
class Request:
    """One case of the matrix: a caller's request on a route."""

    route: Route
    caller: str
    path: str
    body: dict[str, Any]


def requests(route: Route, caller: str, victim: Victim) -> list[Request]:
    """The route aimed at the victim: one request per combination of path values."""
    source = route.template.source
    names = path_variables(route)
    choices = []
    for name in names:
        fill = filler(PATH, source, name)
        if fill is None:
            raise LookupError(f"{route.http_method} {source}: no filler for {{{name}}}")
        choices.append(fill(victim, caller))
    body = {}
    for name in body_fields(route):
        fill = filler(BODY, source, name)
        if fill is not None:
            body[name] = fill(victim, caller)[0]
    made = []
    for values in itertools.product(*choices):
        path = _render(source, dict(zip(names, values, strict=True)))
        made.append(Request(route, caller, path, body))
    return made


def _render(source: str, values: dict[str, Any]) -> str:
    """The template with each variable replaced by its value, escaped as one
    segment (or, for a pattern spanning segments such as `*/*`, as several)."""
    return _VARIABLE.sub(
        lambda m: quote(str(values[m.group(1)]), safe="/" if "/" in (m.group(2) or "") else ""),
        source,
    )


def schedule() -> list[tuple[str, Route]]:
    """(caller, route) in running order: caller by caller, and within a caller
    the routes that end victim objects last."""
    ordered = sorted(routes(), key=lambda r: ROUTES.get(key(r), Rule("")).last)
    return [(caller, route) for caller in CALLERS for route in ordered]
