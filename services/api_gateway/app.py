"""The ASGI application: route, transcode, call the upstream, answer.

At start (the lifespan startup, or `start()`), the app loads the upstream's
descriptors through reflection and builds its route table; every request then
goes: route lookup -> request message -> one generic call on the shared
`grpc.aio` channel -> JSON. `GET /` lists capability strings, `GET /healthz`
asks the upstream's `grpc.health.v1` service, `GET /openapi.json` and
`GET /apidocs` answer documents built once at start, `/console/` and
`/novnc/` the browser console's files (`static_pages.py`). A WebSocket
route's upgrade is bridged to its bidirectional stream (`ws_bridge.py`).
Every response, errors included, carries `X-Request-ID`. The scope's
`"route"` names the pattern of the route that took the request, for its
metrics (`access.py`): the template of an RPC's rule, the gateway's own page
(`static` for the console's files), unset when none did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.api_gateway import apidocs, openapi, routes
from services.api_gateway.access import ROUTE
from services.api_gateway.config import GatewayConfig
from services.api_gateway.descriptors import UpstreamDescriptors, load_descriptors
from services.api_gateway.errors import ErrorReply, GatewayError, UpstreamError
from services.api_gateway.headers import (
    CORS_HEADERS,
    grpc_timeout,
    metadata_safe,
    request_headers,
)
from services.api_gateway.memo import Memo
from services.api_gateway.replies import Replies
from services.api_gateway.responses import (
    ClientGone,
    Headers,
    read_body,
    send_bytes,
    send_error,
    wants_gzip,
)
from services.api_gateway.scalars import parse_decimal
from services.api_gateway.static_pages import MISSING, StaticFiles, load_static
from services.api_gateway.streams import StreamCut, StreamSettings, forward_raw, forward_stream
from services.api_gateway.transcode import (
    RequestParts,
    build_request,
    split_access_token,
    uses_headers,
)
from services.api_gateway.types import Receive, Scope, Send
from services.api_gateway.uploads import forward_upload
from services.api_gateway.upstream import CHANNEL_OPTIONS, CoreCalls, Metadata, MultiCallables
from services.api_gateway.ws_bridge import bridge, chosen_subprotocol, open_stream
from services.common import tracing
from services.common.replicas import replica_channel

log = logging.getLogger(__name__)

REQUEST_MEMO_ENTRIES = 1024
"""Body-less requests whose route and bytes are kept."""
REQUEST_MEMO_LARGEST_KEY = 512
"""Characters of path and query beyond which a request is not kept."""


@dataclass
class _Loaded:
    """What start-up produced."""

    upstream: UpstreamDescriptors
    table: routes.RouteTable
    index_html: bytes
    streams: MultiCallables
    calls: CoreCalls
    sockets: MultiCallables
    static: StaticFiles
    openapi_json: bytes = b""
    apidocs_html: bytes = b""
    requests: Memo[tuple[str, str, str], tuple[routes.Route, bytes]] = field(
        default_factory=lambda: Memo(REQUEST_MEMO_ENTRIES)
    )
    """The route and request bytes of recent body-less unary requests."""
    replies: Replies = field(default_factory=Replies)


class GatewayApp:
    """The gateway as an ASGI 3 application."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._stop = asyncio.Event()
        self._channel: grpc.aio.Channel | None = None
        self._loaded: _Loaded | None = None

    def request_stop(self) -> None:
        """Abort a pending start-up and end open streams (called on SIGTERM)."""
        self._stop.set()

    async def start(self) -> None:
        """Open the channel, load descriptors (retrying), build routes; RouteError if bad."""
        # Unary calls go to the channel's core, past any interceptor: each
        # request's metadata carries its trace itself (`_metadata`).
        self._channel = replica_channel(
            self.config.transport,
            self.config.api_address,
            role="api",
            extra=CHANNEL_OPTIONS,
            traced=False,
        )
        upstream = await load_descriptors(self._channel, stop=self._stop)
        if upstream is None:
            return
        table = routes.build_routes(upstream.services)
        document = openapi.build_openapi(upstream.services, upstream.comments)
        self._loaded = _Loaded(
            upstream,
            table,
            apidocs.render_index(routes.capabilities(upstream.services)),
            MultiCallables(self._channel.unary_stream),
            CoreCalls(self._channel, upstream.pool),
            MultiCallables(self._channel.stream_stream),
            await asyncio.to_thread(load_static, Path(self.config.novnc_dir)),
            openapi_json=orjson.dumps(document),
            apidocs_html=apidocs.render_apidocs(document),
        )

    async def close(self) -> None:
        """Close the upstream channel."""
        if self._channel is not None:
            await self._channel.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await self.start()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()
        self._stop.set()
        await self.close()
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = request_headers(scope)
        given_id = headers.get("x-request-id")
        # gRPC metadata takes printable ASCII only; any other id is replaced.
        request_id = given_id if given_id and metadata_safe(given_id) else str(uuid.uuid4())
        base: Headers = [(b"x-request-id", request_id.encode("latin-1"))]
        if "origin" in headers:
            # Tokens travel in headers or the query, never in cookies, so any
            # origin may read answers (browsers' fetch and EventSource).
            base += CORS_HEADERS
        gzip_ok = wants_gzip(headers)
        try:
            with tracing.span(f"HTTP {scope['method']}", server=True):
                await self._dispatch(scope, receive, send, headers, request_id, base)
        except GatewayError as exc:
            await send_error(send, exc.reply(), base, gzip_ok=gzip_ok)
        except UpstreamError as exc:
            await send_error(send, exc.reply, base, gzip_ok=gzip_ok)
        except ClientGone:
            return
        except Exception:
            log.exception("request %s failed inside the gateway", request_id)
            failure = GatewayError(500, "gateway error", code=grpc.StatusCode.INTERNAL)
            with contextlib.suppress(Exception):  # the response may have started
                await send_error(send, failure.reply(), base, gzip_ok=False)

    async def _dispatch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        request_id: str,
        base: Headers,
    ) -> None:
        """Serve one request: a page of the gateway's own, or a route's call."""
        loaded = self._loaded
        if loaded is None:
            raise GatewayError(503, "the gateway is starting", code=grpc.StatusCode.UNAVAILABLE)
        method: str = scope["method"]
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if raw_path == "/healthz" and method == "GET":
            scope[ROUTE] = raw_path
            await self._health(send, base)
            return
        page = _own_page(loaded, method, raw_path)
        if page is not None:
            scope[ROUTE] = page.route or raw_path
            await send_bytes(
                send,
                200,
                page.body,
                [*base, *page.headers],
                content_type=page.content_type,
                gzip_ok=wants_gzip(headers),
                head_only=method == "HEAD",
            )
            return
        query = scope.get("query_string", b"").decode("latin-1")
        key = (method, raw_path, query)
        planned = loaded.requests.get(key) if _without_body(headers) else None
        if planned is None:
            found = _find_route(loaded.table, method, raw_path)
            scope[ROUTE] = found.route.template.source
            if found.route.websocket:
                raise GatewayError(
                    426,
                    f"{raw_path} is a WebSocket: ask to upgrade",
                    code=grpc.StatusCode.FAILED_PRECONDITION,
                    headers=[("upgrade", "websocket")],
                )
            if found.route.client_streaming:
                await self._upload(found, query, headers, request_id, receive, send, base)
                return
            body = await self._read_body(headers, receive)
            route = found.route
            query, authorization = _credentials(route, query, headers)
            parts = RequestParts(found.path_params, query, body, headers)
            request = build_request(route, parts).SerializeToString()
            if not body and _memoizable(route, key):
                loaded.requests.put(key, (route, request))
        else:
            route, request = planned
            scope[ROUTE] = route.template.source
            query, authorization = _credentials(route, query, headers)
        tracing.rename_span(f"{method} {route.template.source}")
        metadata = _metadata(request_id, authorization)
        call = _Call(loaded, route, request, metadata, grpc_timeout(headers.get("grpc-timeout")))
        if route.server_streaming:
            await self._stream(call, headers, receive, send, base)
        else:
            await self._unary(call, headers, receive, send, base)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bridge a WebSocket route to its stream; refuse anything else with
        an HTTP answer (404, 401, the upstream's refusal...)."""
        headers = request_headers(scope)
        given_id = headers.get("x-request-id")
        request_id = given_id if given_id and metadata_safe(given_id) else str(uuid.uuid4())
        base: Headers = [(b"x-request-id", request_id.encode("latin-1"))]
        if (await receive())["type"] != "websocket.connect":
            return
        try:
            loaded = self._loaded
            if loaded is None:
                raise GatewayError(503, "the gateway is starting", code=grpc.StatusCode.UNAVAILABLE)
            raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
            found = _find_route(loaded.table, "GET", raw_path)
            route = found.route
            scope[ROUTE] = route.template.source
            if not route.websocket:
                raise GatewayError(400, f"{raw_path} is not a WebSocket route")
            query = scope.get("query_string", b"").decode("latin-1")
            query, authorization = _credentials(route, query, headers)
            first = build_request(route, RequestParts(found.path_params, query, b"", headers))
            call = loaded.sockets.get(route)(metadata=_metadata(request_id, authorization))
            try:
                await open_stream(call, first.SerializeToString(), loaded.upstream.pool)
                await bridge(
                    call,
                    route,
                    receive=receive,
                    send=send,
                    headers=base,
                    subprotocol=chosen_subprotocol(scope.get("subprotocols") or []),
                    stop=self._stop,
                    pool=loaded.upstream.pool,
                )
            finally:
                call.cancel()
        except GatewayError as exc:
            await _refuse_websocket(scope, send, exc.reply(), base)
        except UpstreamError as exc:
            await _refuse_websocket(scope, send, exc.reply, base)

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        """The request body, refused with 413 beyond the configured limit."""
        length = headers.get("content-length", "")
        declared = parse_decimal(length) if length else None
        if declared is not None and declared > self.config.max_body:
            raise GatewayError(413, "request body is too large")
        if declared == 0 or (declared is None and "transfer-encoding" not in headers):
            return b""
        try:
            return await read_body(receive, self.config.max_body)
        except OverflowError:
            raise GatewayError(413, "request body is too large") from None

    async def _upload(
        self,
        found: routes.RouteMatch,
        query: str,
        headers: dict[str, str],
        request_id: str,
        receive: Receive,
        send: Send,
        base: Headers,
    ) -> None:
        """Stream a raw request body into a client-streaming RPC; answer its reply."""
        loaded = self._loaded
        assert loaded is not None  # checked by _dispatch
        route = found.route
        length = headers.get("content-length", "")
        declared = parse_decimal(length) if length else None
        if declared is not None and declared > self.config.max_upload:
            raise GatewayError(413, "request body is too large")
        query, authorization = _credentials(route, query, headers)
        first = build_request(route, RequestParts(found.path_params, query, b"", headers))
        call = loaded.calls.client_stream(
            route.rpc_path,
            _metadata(request_id, authorization),
            grpc_timeout(headers.get("grpc-timeout")),
        )
        reply = await forward_upload(
            call,
            route,
            first,
            headers.get("content-type", openapi.OCTETS),
            receive=receive,
            limit=self.config.max_upload,
        )
        body, content_type = loaded.replies.answer(route, reply)
        await send_bytes(send, 200, body, base, content_type=content_type)

    async def _stream(
        self, call: _Call, headers: dict[str, str], receive: Receive, send: Send, base: Headers
    ) -> None:
        """Forward a server stream: raw bytes for `HttpBody`, else NDJSON or SSE."""
        invoke = call.loaded.streams.get(call.route)
        if call.route.raw_reply:
            try:
                await forward_raw(
                    invoke(call.request, metadata=call.metadata, timeout=call.timeout),
                    receive=receive,
                    send=send,
                    headers=base,
                    stop=self._stop,
                    pool=call.loaded.upstream.pool,
                )
            except StreamCut as exc:
                log.warning("%s %s cut short: %s", call.route.http_method, call.route.rpc_path, exc)
            return
        settings = StreamSettings(
            sse="text/event-stream" in headers.get("accept", ""),
            response_body=call.route.response_body,
            sse_ping=self.config.sse_ping,
            start_wait=self.config.stream_start_wait,
        )
        await forward_stream(
            invoke(call.request, metadata=call.metadata, timeout=call.timeout),
            receive=receive,
            send=send,
            headers=base,
            settings=settings,
            stop=self._stop,
            pool=call.loaded.upstream.pool,
        )

    async def _unary(
        self, call: _Call, headers: dict[str, str], receive: Receive, send: Send, base: Headers
    ) -> None:
        """Make a unary call and answer its reply: raw for `HttpBody`, else JSON."""
        timeout = call.timeout or self.config.deadline
        reply = await call.loaded.calls.unary(
            call.route.rpc_path, call.request, call.metadata, timeout, receive
        )
        body, content_type = call.loaded.replies.answer(call.route, reply)
        await send_bytes(
            send, 200, body, base, content_type=content_type, gzip_ok=wants_gzip(headers)
        )

    async def _health(self, send: Send, base: Headers) -> None:
        assert self._channel is not None  # set by start()
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2.0)
        except grpc.aio.AioRpcError as exc:
            raise GatewayError(
                503,
                f"upstream health check failed: {exc.code().name}",
                code=grpc.StatusCode.UNAVAILABLE,
            ) from None
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise GatewayError(503, "upstream is not serving", code=grpc.StatusCode.UNAVAILABLE)
        await send_bytes(send, 200, b'{"status":"ok"}', base)


@dataclass(frozen=True)
class _Page:
    """A document the gateway answers itself."""

    body: bytes
    content_type: bytes = b"application/json"
    headers: Headers = field(default_factory=list)
    route: str = ""
    """Its `route` label when not its path (`static` for a file)."""


@dataclass(frozen=True)
class _Call:
    """One upstream call, ready to be made."""

    loaded: _Loaded
    route: routes.Route
    request: bytes
    metadata: Metadata
    timeout: float | None


_HTML = b"text/html; charset=utf-8"


def _own_page(loaded: _Loaded, method: str, path: str) -> _Page | None:
    """The gateway's own page at `path` for `method`, if there is one. Pure."""
    if path == "/" and method in ("GET", "HEAD"):
        return _Page(loaded.index_html, _HTML)
    if method != "GET":
        return None
    if path == "/openapi.json":
        return _Page(loaded.openapi_json)
    if path == "/apidocs":
        return _Page(loaded.apidocs_html, _HTML)
    found = loaded.static.find(path)
    if found is not None:
        return _Page(found.body, found.content_type, found.headers, "static")
    if loaded.static.is_page(path):
        raise GatewayError(503, MISSING, code=grpc.StatusCode.UNAVAILABLE)
    return None


async def _refuse_websocket(scope: Scope, send: Send, reply: ErrorReply, base: Headers) -> None:
    """Refuse a WebSocket with an HTTP error answer (ASGI's denial
    extension), or a bare close where the server lacks it (403)."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    headers = [*base, *extra, (b"content-type", b"application/json")]
    status = reply.http_status
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": orjson.dumps(reply.body())})


def _find_route(table: routes.RouteTable, method: str, path: str) -> routes.RouteMatch:
    """The route for `method` and `path`; 404 for an unknown path, 405 with
    `Allow` for a known path and another method."""
    found = table.lookup(method, path)
    if isinstance(found, routes.NoRoute):
        raise GatewayError(404, f"no route for {method} {path}", code=grpc.StatusCode.NOT_FOUND)
    if isinstance(found, routes.MethodNotAllowed):
        raise GatewayError(
            405,
            f"method {method} is not allowed for {path}",
            code=grpc.StatusCode.UNIMPLEMENTED,
            headers=[("allow", ", ".join(found.allow))],
        )
    return found


def _metadata(request_id: str, authorization: str | None) -> Metadata:
    """The gRPC metadata of an upstream call, with the request's trace when traced."""
    carried: Metadata = (("x-request-id", request_id),)
    if authorization is not None:
        carried += (("authorization", authorization),)
    parent = tracing.traceparent()
    if parent:
        carried += ((tracing.TRACEPARENT, parent),)
    return carried


def _without_body(headers: dict[str, str]) -> bool:
    """Whether the request says it has no body."""
    return headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers


def _memoizable(route: routes.Route, key: tuple[str, str, str]) -> bool:
    """Whether a body-less request's route and bytes may be kept for `key`: a
    unary call whose request depends on nothing but the path and query."""
    return (
        not route.server_streaming
        and len(key[1]) + len(key[2]) <= REQUEST_MEMO_LARGEST_KEY
        and not uses_headers(route)
    )


def _credentials(
    route: routes.Route, query: str, headers: dict[str, str]
) -> tuple[str, str | None]:
    """The query string and the `Authorization` value to send up; 401 for a
    value gRPC metadata cannot carry."""
    authorization = headers.get("authorization")
    if route.server_streaming and authorization is None:
        # A browser's EventSource cannot send headers: streams also take
        # the bearer token as `?access_token=`.
        query, token = split_access_token(query)
        authorization = f"Bearer {token}" if token else None
    if authorization is not None and not metadata_safe(authorization):
        raise GatewayError(
            401,
            "invalid JWT in Authorization header",
            code=grpc.StatusCode.UNAUTHENTICATED,
            headers=[("www-authenticate", "Bearer")],
        )
    return query, authorization
