"""docs/compatibility.md checked against the official client and sfmesh's route table. Pure.

Three sources meet here, and no server runs:

- **The client's routes**, read from the source of the installed
  `shakenfist_client.apiclient` with `ast` (nothing is imported from it but
  its file name). Every call to `_request_url`, `_actual_request_url` or a
  `requests`-style `request` whose first argument is an HTTP method in quotes
  is a route. Its URL expression is evaluated symbolically: string pieces
  are kept, `+`, `%` and f-strings are followed, `self.base_url` is the
  origin, a local variable is replaced by every value assigned to it (so
  `'/reboot' + style` gives `rebootsoft` and `reboothard`), and anything else
  (a parameter, `str(version_id)`) becomes a `{name}` placeholder. A query
  string is cut off. When the URL depends on a parameter of a private helper
  (`_get_metadata(object_plural, ...)`), the route is read again at each
  call of that helper, with the caller's arguments bound.
- **sfmesh's routes**: the gateway's own `build_routes` over the services the
  api registers (named in `services/api/server.py`, descriptors from
  `gen/sfmesh/v1`), plus the gateway's own pages. A client route is served
  when the table matches it with a sample value in each placeholder.
- **The doc's tables**, parsed from the markdown by their headings.

What the client does for a route sfmesh lacks follows from its capability
checks: a method that raises `IncapableException` when `check_capability`
(a substring test on the `GET /` page) fails never sends the request.
"""

from __future__ import annotations

import ast
import importlib
import itertools
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import util as importlib_util
from pathlib import Path

from services.api_gateway.apidocs import render_index
from services.api_gateway.routes import (
    MethodNotAllowed,
    RouteMatch,
    RouteTable,
    build_routes,
    capabilities,
    routes_of_method,
)
from services.api_gateway.types import ServiceDescriptor
from tests.e2e import isolation

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "compatibility.md"

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUEST_CALLS = frozenset({"_request_url", "_actual_request_url", "request"})
OWN_PAGES = frozenset(
    {
        ("GET", "/"),
        ("HEAD", "/"),
        ("GET", "/healthz"),
        ("GET", "/openapi.json"),
        ("GET", "/apidocs"),
        ("GET", "/console/"),
    }
)
"""Answered by the gateway itself, not by a route (services/api_gateway/app.py)."""
NOT_BUILT = "Routes of the official client not built yet"
REFUSED = "Served routes the client may still refuse"
CAPABILITIES = "Capability strings"
SERVED_ONLY = "Routes sfmesh serves that Shaken Fist does not"
PLACEHOLDER = re.compile(r"\{[^}]*\}")


# --- the client's routes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """A capability check that raises IncapableException before the request."""

    capability: str
    always: bool
    """False when the check only applies for some arguments (`namespace and not ...`)."""


@dataclass
class ClientRoute:
    """One (method, path) the client calls; placeholders as `{name}`."""

    method: str
    path: str
    functions: set[str] = field(default_factory=set)
    gates: dict[str, set[Gate]] = field(default_factory=dict)
    """Per calling function, the gates on the way to the request."""

    @property
    def key(self) -> tuple[str, str]:
        return self.method, normalise(self.path)


def normalise(path: str) -> str:
    """The path with every placeholder as `{}`, for comparing templates."""
    return PLACEHOLDER.sub("{}", path)


@dataclass
class _Scope:
    """Where names of one function resolve: call-site arguments, assignments, parameters."""

    function: ast.FunctionDef
    bound: dict[str, tuple[ast.expr, _Scope]] = field(default_factory=dict)

    @property
    def params(self) -> list[str]:
        return [a.arg for a in self.function.args.args[1:]]

    def assigned(self, name: str) -> list[ast.expr]:
        found = []
        for node in ast.walk(self.function):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                found.append(node.value)
        return found


def _strings(expr: ast.expr, scope: _Scope, busy: frozenset[str] = frozenset()) -> set[str]:
    """Every string `expr` can build, with `{name}` where a value is not known."""
    match expr:
        case ast.Constant(value=str() as text):
            return {text}
        case ast.JoinedStr(values=values):
            return _concat([_strings(v, scope, busy) for v in values])
        case ast.FormattedValue(value=value):
            return _strings(value, scope, busy)
        case ast.BinOp(left=left, op=ast.Add(), right=right):
            return _concat([_strings(left, scope, busy), _strings(right, scope, busy)])
        case ast.BinOp(left=ast.Constant(value=str() as fmt), op=ast.Mod(), right=right):
            args = right.elts if isinstance(right, ast.Tuple) else [right]
            pieces = re.split(r"%[sd]", fmt)
            assert len(pieces) == len(args) + 1, ast.unparse(expr)
            parts: list[set[str]] = [{pieces[0]}]
            for arg, piece in zip(args, pieces[1:], strict=True):
                parts += [_strings(arg, scope, busy), {piece}]
            return _concat(parts)
        case ast.Attribute(value=ast.Name(id="self"), attr="base_url"):
            return {""}
        case ast.Attribute(attr=attr):
            return {"{" + attr + "}"}
        case ast.Call(func=ast.Name(id="str"), args=[arg]):
            return _strings(arg, scope, busy)
        case ast.Name(id=name):
            return _name(name, scope, busy)
    return {"{" + ast.unparse(expr) + "}"}


def _name(name: str, scope: _Scope, busy: frozenset[str]) -> set[str]:
    if name in busy:
        return {"{" + name + "}"}
    busy = busy | {name}
    if name in scope.bound:
        expr, outer = scope.bound[name]
        return _strings(expr, outer, busy)
    found: set[str] = set()
    for value in scope.assigned(name):
        found |= _strings(value, scope, busy)
    if name in scope.params or not found:
        found.add("{" + name + "}")
    return found


def _concat(parts: list[set[str]]) -> set[str]:
    return {"".join(p) for p in itertools.product(*parts)}


def _uses_params(expr: ast.expr, scope: _Scope) -> bool:
    names = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    for name in list(names):
        for value in scope.assigned(name):
            names |= {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
    return bool(names & set(scope.params))


def _request_calls(function: ast.FunctionDef) -> Iterator[tuple[str, ast.expr]]:
    """(HTTP method, URL expression) of each request the function sends itself."""
    for node in ast.walk(function):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in REQUEST_CALLS or len(node.args) < 2:
            continue
        method = node.args[0]
        if isinstance(method, ast.Constant) and method.value in HTTP_METHODS:
            yield method.value, node.args[1]


def _self_calls(function: ast.FunctionDef, name: str) -> Iterator[ast.Call]:
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
            and node.func.attr == name
        ):
            yield node


def _gates(function: ast.FunctionDef) -> set[Gate]:
    """The capability checks of `function` that raise IncapableException."""
    found = set()
    for node in ast.walk(function):
        if not isinstance(node, ast.If) or not any(_raises_incapable(s) for s in node.body):
            continue
        # Always refused: `if not self.check_capability(...)` directly in the body.
        always = (
            node in function.body
            and isinstance(node.test, ast.UnaryOp)
            and isinstance(node.test.op, ast.Not)
            and isinstance(node.test.operand, ast.Call)
        )
        tests: list[ast.AST] = [node.test]
        for name in (n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)):
            tests += _Scope(function).assigned(name)
        for test in tests:
            for cap in _capability_strings(test):
                found.add(Gate(cap, always))
    return found


def _raises_incapable(statement: ast.stmt) -> bool:
    return any(
        isinstance(n, ast.Raise) and "IncapableException" in ast.unparse(n)
        for n in ast.walk(statement)
    )


def _capability_strings(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "check_capability"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield str(node.args[0].value)


def _client_source(module: str) -> ast.Module:
    spec = importlib_util.find_spec(module)
    assert spec is not None and spec.origin is not None, f"{module} is not installed"
    return ast.parse(Path(spec.origin).read_text(), spec.origin)


def _client_methods() -> dict[str, ast.FunctionDef]:
    tree = _client_source("shakenfist_client.apiclient")
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Client"]
    assert len(classes) == 1, "shakenfist_client.apiclient has no class Client"
    return {n.name: n for n in classes[0].body if isinstance(n, ast.FunctionDef)}


@cache
def client_routes() -> dict[tuple[str, str], ClientRoute]:
    """Every route the official client calls, by (method, normalised path)."""
    methods = _client_methods()
    found: dict[tuple[str, str], ClientRoute] = {}

    def add(method: str, paths: set[str], function: str, gates: set[Gate]) -> None:
        for path in paths:
            path = path.split("?", 1)[0] or "/"
            assert path.startswith("/"), (function, path)
            route = ClientRoute(method, path)
            route = found.setdefault(route.key, route)
            route.functions.add(function)
            route.gates.setdefault(function, set()).update(gates)

    for name, function in methods.items():
        scope = _Scope(function)
        for method, url in _request_calls(function):
            if name.startswith("_") and _uses_params(url, scope):
                # A helper building the URL from its arguments: read it at each call.
                callers = [c for c in methods.values() if any(_self_calls(c, name))]
                assert callers, f"{name} builds a URL from its arguments but nothing calls it"
                for caller_name, caller in methods.items():
                    for call in _self_calls(caller, name):
                        bound = {
                            p: (a, _Scope(caller))
                            for p, a in zip(scope.params, call.args, strict=False)
                        }
                        bound |= {k.arg: (k.value, _Scope(caller)) for k in call.keywords if k.arg}
                        paths = _strings(url, _Scope(function, bound))
                        add(method, paths, caller_name, _gates(caller) | _gates(function))
            else:
                add(method, _strings(url, scope), name, _gates(function))
    return found


@cache
def client_capabilities() -> dict[str, set[str]]:
    """Every capability string the client package checks, with where (`Client.x`, `cli x.py`)."""
    found: dict[str, set[str]] = defaultdict(set)
    for name, function in _client_methods().items():
        for cap in _capability_strings(function):
            found[cap].add(f"`{name}`")
    spec = importlib_util.find_spec("shakenfist_client")
    assert spec is not None and spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations)))
    for source in [package / "util.py", *sorted((package / "commandline").glob("*.py"))]:
        for cap in _capability_strings(ast.parse(source.read_text())):
            found[cap].add(f"`sf-client` ({source.stem})")
    return dict(found)


# --- sfmesh's routes --------------------------------------------------------------------------


def served_services() -> tuple[ServiceDescriptor, ...]:
    """The services the api registers, whose http rules the gateway serves."""
    return isolation.services()


@cache
def route_table() -> RouteTable:
    return build_routes(served_services())


@cache
def index_page() -> str:
    """sfmesh's `GET /` page, where the client looks for capability strings."""
    return render_index(capabilities(served_services())).decode()


def advertised(capability: str) -> bool:
    """What the client's `check_capability` answers against sfmesh."""
    return capability in index_page()


def status(method: str, path: str) -> int:
    """What sfmesh's router does with the route: 200 (served), 404 or 405."""
    if (method, path) in OWN_PAGES:
        return 200
    found = route_table().lookup(method, PLACEHOLDER.sub("sample", path))
    if isinstance(found, RouteMatch):
        return 200
    return 405 if isinstance(found, MethodNotAllowed) else 404


def served(method: str, path: str) -> bool:
    return status(method, path) == 200


def refusals(route: ClientRoute) -> set[str]:
    """Capabilities sfmesh does not advertise that make the client refuse this route."""
    return {g.capability for gs in route.gates.values() for g in gs if not advertised(g.capability)}


def always_refused(route: ClientRoute) -> bool:
    """Every calling function refuses the route before sending it."""
    return all(
        any(g.always and not advertised(g.capability) for g in gates)
        for gates in route.gates.values()
    )


# --- the doc ---------------------------------------------------------------------------------


def doc_table(heading: str) -> list[dict[str, str]]:
    """The rows of the first table under `## heading` (or `###`), cells without markup."""
    lines = DOC.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if re.fullmatch(rf"#+ {re.escape(heading)}", line)]
    assert len(starts) == 1, f"docs/compatibility.md needs one heading {heading!r}"
    rows: list[list[str]] = []
    for line in lines[starts[0] + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    assert len(rows) >= 2, f"no table under {heading!r}"
    header = [c.lower() for c in rows[0]]
    return [dict(zip(header, r, strict=True)) for r in rows[2:]]


def _code(cell: str) -> str:
    return cell.replace("`", "").strip()


def doc_routes(heading: str) -> dict[tuple[str, str], dict[str, str]]:
    found: dict[tuple[str, str], dict[str, str]] = {}
    for row in doc_table(heading):
        key = (_code(row["method"]), normalise(_code(row["path"])))
        assert key not in found, f"{key} appears twice under {heading!r}"
        found[key] = row
    return found


# --- the checks ------------------------------------------------------------------------------


def test_the_client_source_reads_as_expected() -> None:
    """A few routes of each shape, so a change in the client's style fails loudly here."""
    routes = client_routes()
    expected = [
        ("GET", "/"),
        ("POST", "/auth"),
        ("GET", "/instances"),
        ("POST", "/instances/{}/rebootsoft"),
        ("POST", "/instances/{}/reboothard"),
        ("PUT", "/artifacts/{}/metadata/{}"),
        ("DELETE", "/auth/namespaces/{}/metadata/{}"),
        ("GET", "/blobs/{}/events"),
        ("POST", "/artifacts/upload/{}"),
        ("GET", "/blobs/{}/checksum/{}"),
        ("GET", "/blobs/{}/data"),
        ("DELETE", "/artifacts/{}/versions/{}"),
        ("GET", "/instances/{}/consoledata"),
    ]
    for key in expected:
        assert key in routes, key
    assert len(routes) >= 100
    for route in routes.values():
        assert re.fullmatch(r"(/[\w.{}-]+)+|/", route.path), route.path
    blob_events = routes[("GET", "/blobs/{}/events")]
    assert blob_events.functions == {"get_blob_events"}
    assert Gate("blob-events", True) in blob_events.gates["get_blob_events"]
    assert Gate("events-by-type", False) in blob_events.gates["get_blob_events"]


def test_every_client_route_is_served_or_listed_as_not_built() -> None:
    listed = doc_routes(NOT_BUILT)
    missing = [
        f"{r.method} {r.path} ({', '.join(sorted(r.functions))})"
        for key, r in sorted(client_routes().items())
        if not served(r.method, r.path) and key not in listed
    ]
    assert not missing, f"unserved and not in {NOT_BUILT!r}:\n" + "\n".join(missing)


def test_no_listed_route_is_served_or_unknown_to_the_client() -> None:
    routes = client_routes()
    wrong = []
    for key in doc_routes(NOT_BUILT):
        if key not in routes:
            wrong.append(f"{key}: the client never calls it")
        elif served(*key):
            wrong.append(f"{key}: served now, remove its row")
    assert not wrong, "\n".join(wrong)


def test_listed_functions_and_client_behaviour_are_right() -> None:
    """The row names the client functions and says 404 and/or IncapableException truly."""
    routes = client_routes()
    wrong = []
    for key, row in doc_routes(NOT_BUILT).items():
        route = routes.get(key)
        if route is None or served(*key):
            continue  # the test above reports it
        named = set(re.findall(r"`(\w+)`", row["client function"]))
        if named != route.functions:
            wrong.append(f"{key}: functions {sorted(named)} != {sorted(route.functions)}")
        today = row["client today"]
        if ("IncapableException" in today) != bool(refusals(route)):
            wrong.append(f"{key}: IncapableException claim wrong ({sorted(refusals(route))})")
        # A request the client sends meets the router's 404 or 405; one it never sends, neither.
        sent = set() if always_refused(route) else {str(status(*key))}
        if set(re.findall(r"\b40[45]\b", today)) != sent:
            wrong.append(f"{key}: should say {sorted(sent) or 'no status'}")
        for cap in refusals(route):
            if f"`{cap}`" not in today:
                wrong.append(f"{key}: name the capability `{cap}`")
    assert not wrong, "\n".join(wrong)


def test_served_routes_the_client_may_refuse_are_listed() -> None:
    expected = {
        (r.method, normalise(r.path)): refusals(r)
        for r in client_routes().values()
        if served(r.method, r.path) and refusals(r)
    }
    listed = {
        key: set(re.findall(r"`([\w-]+)`", row["capability"]))
        for key, row in doc_routes(REFUSED).items()
    }
    assert listed == expected


def test_capability_table_matches_the_client_and_sfmesh() -> None:
    checked = client_capabilities()
    table = doc_table(CAPABILITIES)
    rows = {_code(r["capability"]): r for r in table}
    assert len(rows) == len(table), "a capability appears twice"
    assert set(rows) == set(checked), (
        f"missing {sorted(set(checked) - set(rows))}, extra {sorted(set(rows) - set(checked))}"
    )
    wrong = []
    for cap, row in rows.items():
        says = row["sfmesh advertises"].split()[0].lower()
        if says != ("yes" if advertised(cap) else "no"):
            wrong.append(f"{cap}: advertised is {advertised(cap)}")
        for where in checked[cap]:
            if where not in row["checked by"]:
                wrong.append(f"{cap}: checked by {where}")
    assert not wrong, "\n".join(wrong)


def test_routes_only_sfmesh_serves_are_served() -> None:
    """Listed ones are served and unknown to the client; every `:verb` route is listed
    (Shaken Fist has none), and so are the gateway's own pages."""
    listed = doc_routes(SERVED_ONLY)
    client = client_routes()
    for key in listed:
        assert served(*key), f"{key} is not served"
        assert key not in client, f"{key} is a Shaken Fist route"
    verbs = {
        (r.http_method, normalise(r.template.source))
        for r in route_table().routes
        if r.template.verb
    }
    pages = {(m, p) for m, p in OWN_PAGES if (m, p) not in client and m == "GET"}
    assert verbs | pages <= set(listed), sorted(verbs | pages - set(listed))


def test_no_served_route_answers_501() -> None:
    """The doc says every served route is implemented: each RPC of a served service is
    overridden by the api's servicer (an inherited one answers UNIMPLEMENTED, a 501)."""
    importlib.import_module("services.api.server")  # imports every servicer it registers
    missing = []
    for service in served_services():
        module = importlib.import_module(
            service.file.name.replace(".proto", "_pb2_grpc").replace("/", ".")
        )
        base = getattr(module, f"{service.name}Servicer")
        # Only the api's own: other tests may subclass the base with fakes.
        servicers = [c for c in base.__subclasses__() if c.__module__.startswith("services.api.")]
        assert servicers, f"no servicer implements {service.full_name}"
        for servicer in servicers:
            for method in service.methods:
                routed = bool(routes_of_method(method))
                if routed and getattr(servicer, method.name) is getattr(base, method.name):
                    missing.append(f"{servicer.__name__}.{method.name}")
    assert not missing, f"inherited (501) yet routed: {missing}"


def test_no_capability_hides_in_another() -> None:
    """The client's checks are substring tests: no string it checks that
    sfmesh does not advertise may appear inside one sfmesh does."""
    offered = capabilities(served_services())
    for checked in client_capabilities():
        if checked not in offered:
            hosts = [c for c in offered if checked in c]
            assert not hosts, f"{checked} is not advertised, yet is inside {hosts}"
    built = {
        "artifact-metadata",
        "blob-metadata",
        "blob-search-by-hash",
        "blob-data-limit",
        "artifact-upload-types",
        "blob-events",
        "blob-single-checksum",
    }
    assert built <= set(offered)
