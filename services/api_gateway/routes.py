"""The route table: google.api.http rules of service descriptors -> routes. Pure.

Routes are built from every method's `google.api.http` option, including its
`additional_bindings`. Lookup answers a match, "no such path" (404) or "path
exists with other methods" (405 with the allowed methods). Among templates
that fit a path, a custom verb beats none and literal segments beat
variables. When the last segment of a request ends in `:<verb>` for a verb
some route declares, only routes with that verb are considered, so
`/instances/x:watch` never reaches `/instances/{ref}`.

A bidirectional stream whose GET rule answers a `bytes` field alone
(`response_body`), a field the request has too, is a WebSocket route
(`Route.websocket`): the path and query fill the first request message,
each binary frame from the client goes up in that field of a later one,
and that field of each reply comes down as a binary frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from google.api import http_pb2

from services.api_gateway import options
from services.api_gateway.pattern import SlotKind, Template, TemplateError, parse_template
from services.api_gateway.types import MessageDescriptor, MethodDescriptor, ServiceDescriptor

HTTP_BODY = "google.api.HttpBody"


class RouteError(ValueError):
    """The rules cannot make a consistent route table; the gateway must not start."""


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one RPC."""

    http_method: str
    template: Template
    method: MethodDescriptor
    body: str
    """"" (no body declared), "*" (whole message) or a top-level field name."""
    response_body: str
    """"" for the whole response message, else the field answered alone."""

    @cached_property
    def rpc_path(self) -> str:
        """The gRPC method path, e.g. "/sfmesh.v1.InstanceService/GetInstance"."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def server_streaming(self) -> bool:
        """Whether the RPC answers a stream of messages."""
        return bool(self.method.server_streaming)

    @property
    def client_streaming(self) -> bool:
        """Whether the RPC takes a stream of messages (a raw body, in chunks)."""
        return bool(self.method.client_streaming)

    @cached_property
    def raw_body(self) -> bool:
        """Whether the request body goes up as bytes, in chunks: a client
        stream whose body field is a `google.api.HttpBody` (see `uploads`)."""
        if not self.client_streaming or self.body in ("", "*"):
            return False
        field = self.method.input_type.fields_by_name[self.body]
        return field.message_type is not None and field.message_type.full_name == HTTP_BODY

    @cached_property
    def websocket(self) -> bool:
        """Whether the route is a WebSocket: a bidirectional stream bound to
        GET whose `response_body` is a `bytes` field that the request has
        too (see the module's docstring)."""
        if not (self.client_streaming and self.server_streaming):
            return False
        if self.http_method != "GET" or not self.response_body:
            return False
        down = self.method.output_type.fields_by_name.get(self.response_body)
        up = self.method.input_type.fields_by_name.get(self.response_body)
        return all(
            fd is not None and fd.type == fd.TYPE_BYTES and not fd.is_repeated for fd in (down, up)
        )

    @cached_property
    def raw_reply(self) -> bool:
        """Whether the RPC answers `google.api.HttpBody`: written raw."""
        return bool(self.method.output_type.full_name == HTTP_BODY)


@dataclass(frozen=True)
class RouteMatch:
    """A route and the raw values its path variables captured."""

    route: Route
    path_params: dict[str, str]


@dataclass(frozen=True)
class NoRoute:
    """No template fits the path (404)."""


@dataclass(frozen=True)
class MethodNotAllowed:
    """Templates fit the path, but none under this HTTP method (405)."""

    allow: tuple[str, ...]


Lookup = RouteMatch | NoRoute | MethodNotAllowed


@dataclass
class RouteTable:
    """All routes, ordered most specific first."""

    routes: list[Route] = field(default_factory=list)
    verbs: frozenset[str] = frozenset()
    _by_count: dict[int, list[Route]] = field(init=False, repr=False)
    """Per number of path segments, the routes that may fit it, in table order."""
    _deep: list[Route] = field(init=False, repr=False)
    """The routes ending in `**`, which fit any longer path too."""

    def __post_init__(self) -> None:
        self._deep = [route for route in self.routes if _is_deep(route)]
        longest = max((len(route.template.slots) for route in self.routes), default=0)
        self._by_count = {
            count: [route for route in self.routes if _may_fit(route, count)]
            for count in range(longest + 1)
        }

    def lookup(self, http_method: str, raw_path: str) -> Lookup:
        """Find the route serving `http_method raw_path`. Only the routes that
        may fit its number of segments are tried (matching every route cost
        40-80 us a request)."""
        verb = _request_verb(raw_path, self.verbs)
        count = raw_path.count("/")
        allowed: set[str] = set()
        for route in self._by_count.get(count, self._deep):
            if route.template.verb != verb:
                continue
            params = route.template.match(raw_path)
            if params is None:
                continue
            if route.http_method == http_method:
                return RouteMatch(route, params)
            allowed.add(route.http_method)
        if allowed:
            return MethodNotAllowed(tuple(sorted(allowed)))
        return NoRoute()


def _is_deep(route: Route) -> bool:
    slots = route.template.slots
    return bool(slots) and slots[-1].kind is SlotKind.DEEP


def _may_fit(route: Route, count: int) -> bool:
    """Whether `route` may fit a path of `count` segments."""
    slots = len(route.template.slots)
    return count >= slots - 1 if _is_deep(route) else count == slots


def _request_verb(raw_path: str, verbs: frozenset[str]) -> str:
    last = raw_path.rsplit("/", 1)[-1]
    head, colon, tail = last.rpartition(":")
    if colon and head and tail in verbs:
        return tail
    return ""


def build_routes(services: Iterable[ServiceDescriptor]) -> RouteTable:
    """Build the table; raise RouteError on a bad template or a duplicate binding."""
    routes: list[Route] = []
    claimed: dict[tuple[str, str], str] = {}
    for service in services:
        for method in service.methods:
            for route in routes_of_method(method):
                key = (route.http_method, route.template.shape)
                other = claimed.get(key)
                if other is not None:
                    raise RouteError(
                        f"{route.http_method} {route.template.source} is claimed by both "
                        f"{other} and {method.full_name}"
                    )
                claimed[key] = method.full_name
                routes.append(route)
    routes.sort(key=lambda r: r.template.specificity)
    verbs = frozenset(r.template.verb for r in routes if r.template.verb)
    return RouteTable(routes, verbs)


def routes_of_method(method: MethodDescriptor) -> list[Route]:
    """The routes one RPC declares: none without an http rule, nor for a
    client stream unless it takes a raw body (an `HttpBody` body field) and
    answers one message, or is a WebSocket (`Route.websocket`)."""
    rule = options.http_rule(method)
    if rule is None:
        return []
    found = [_route(method, r) for r in (rule, *rule.additional_bindings)]
    if method.client_streaming and not all(
        r.websocket or (r.raw_body and not r.server_streaming) for r in found
    ):
        return []
    return found


def _route(method: MethodDescriptor, rule: http_pb2.HttpRule) -> Route:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        raise RouteError(f"{method.full_name}: http rule without a method and path")
    if pattern == "custom":
        http_method, path = rule.custom.kind.upper(), rule.custom.path
    else:
        http_method, path = pattern.upper(), getattr(rule, pattern)
    try:
        template = parse_template(path)
    except TemplateError as exc:
        raise RouteError(f"{method.full_name}: {exc}") from exc
    request = method.input_type
    for var in template.variables:
        _check_field_path(method, request, var.field_path)
    if rule.body not in ("", "*") and rule.body not in request.fields_by_name:
        raise RouteError(f"{method.full_name}: body field {rule.body!r} does not exist")
    if rule.response_body and rule.response_body not in method.output_type.fields_by_name:
        raise RouteError(
            f"{method.full_name}: response_body field {rule.response_body!r} does not exist"
        )
    return Route(http_method, template, method, rule.body, rule.response_body)


def _check_field_path(
    method: MethodDescriptor, message: MessageDescriptor, field_path: str
) -> None:
    current = message
    for name in field_path.split("."):
        fields = getattr(current, "fields_by_name", {})
        fd = fields.get(name)
        if fd is None or fd.is_repeated:
            raise RouteError(f"{method.full_name}: path binds unknown field {field_path!r}")
        current = fd.message_type


def capabilities(services: Iterable[ServiceDescriptor]) -> list[str]:
    """The `(sfmesh.v1.capability)` strings of every RPC, in declaration order, once each."""
    seen: dict[str, None] = {}
    for service in services:
        for method in service.methods:
            for cap in options.capabilities(method):
                seen.setdefault(cap, None)
    return list(seen)
