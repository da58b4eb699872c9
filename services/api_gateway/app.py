"""The ASGI application: route, transcode, call the upstream, answer.

At start (the lifespan startup, or `start()`), the app loads the upstream's
descriptors through reflection and builds its route table; every request then
goes: route lookup -> request message -> one generic call on the shared
`grpc.aio` channel -> JSON. `GET /` lists capability strings, `GET /healthz`
asks the upstream's `grpc.health.v1` service, `GET /openapi.json` and
`GET /apidocs` answer documents built once at start. Every response, errors
included, carries `X-Request-ID`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

import grpc
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.api_gateway import apidocs, marshal, openapi, routes
from services.api_gateway.config import GatewayConfig
from services.api_gateway.descriptors import UpstreamDescriptors, load_descriptors
from services.api_gateway.errors import GatewayError, UpstreamError
from services.api_gateway.headers import (
    CORS_HEADERS,
    grpc_timeout,
    metadata_safe,
    request_headers,
)
from services.api_gateway.responses import (
    ClientGone,
    Headers,
    read_body,
    send_bytes,
    send_error,
    wants_gzip,
)
from services.api_gateway.streams import StreamSettings, forward_stream
from services.api_gateway.transcode import RequestParts, build_request, split_access_token
from services.api_gateway.types import Receive, Scope, Send
from services.api_gateway.upstream import CHANNEL_OPTIONS, Callables, await_unless_gone

log = logging.getLogger(__name__)


@dataclass
class _Loaded:
    """What start-up produced."""

    upstream: UpstreamDescriptors
    table: routes.RouteTable
    index_html: bytes
    callables: Callables
    openapi_json: bytes = b""
    apidocs_html: bytes = b""


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
        self._channel = grpc.aio.insecure_channel(self.config.api_address, CHANNEL_OPTIONS)
        upstream = await load_descriptors(self._channel, stop=self._stop)
        if upstream is None:
            return
        table = routes.build_routes(upstream.services)
        document = openapi.build_openapi(upstream.services, upstream.comments)
        self._loaded = _Loaded(
            upstream,
            table,
            apidocs.render_index(routes.capabilities(upstream.services)),
            Callables(self._channel),
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
        method: str = scope["method"]
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        loaded = self._loaded
        if loaded is None:
            raise GatewayError(503, "the gateway is starting", code=grpc.StatusCode.UNAVAILABLE)
        if raw_path == "/" and method in ("GET", "HEAD"):
            await send_bytes(
                send,
                200,
                loaded.index_html,
                base,
                content_type=b"text/html; charset=utf-8",
                head_only=method == "HEAD",
            )
            return
        if raw_path == "/healthz" and method == "GET":
            await self._health(send, base)
            return
        if raw_path == "/openapi.json" and method == "GET":
            await send_bytes(send, 200, loaded.openapi_json, base, gzip_ok=wants_gzip(headers))
            return
        if raw_path == "/apidocs" and method == "GET":
            await send_bytes(
                send,
                200,
                loaded.apidocs_html,
                base,
                content_type=b"text/html; charset=utf-8",
                gzip_ok=wants_gzip(headers),
            )
            return
        found = loaded.table.lookup(method, raw_path)
        if isinstance(found, routes.NoRoute):
            raise GatewayError(
                404, f"no route for {method} {raw_path}", code=grpc.StatusCode.NOT_FOUND
            )
        if isinstance(found, routes.MethodNotAllowed):
            raise GatewayError(
                405,
                f"method {method} is not allowed for {raw_path}",
                code=grpc.StatusCode.UNIMPLEMENTED,
                headers=[("allow", ", ".join(found.allow))],
            )
        route = found.route
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.config.max_body:
            raise GatewayError(413, "request body is too large")
        body = b""
        if length not in ("", "0") or "transfer-encoding" in headers:
            try:
                body = await read_body(receive, self.config.max_body)
            except OverflowError:
                raise GatewayError(413, "request body is too large") from None
        query = scope.get("query_string", b"").decode("latin-1")
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
        request = build_request(route, RequestParts(found.path_params, query, body, headers))
        metadata = [("x-request-id", request_id)]
        if authorization is not None:
            metadata.append(("authorization", authorization))
        timeout = grpc_timeout(headers.get("grpc-timeout"))
        invoke = loaded.callables.get(route)
        if route.server_streaming:
            call = invoke(request, metadata=metadata, timeout=timeout)
            settings = StreamSettings(
                sse="text/event-stream" in headers.get("accept", ""),
                response_body=route.response_body,
                sse_ping=self.config.sse_ping,
                start_wait=self.config.stream_start_wait,
            )
            await forward_stream(
                call,
                receive=receive,
                send=send,
                headers=base,
                settings=settings,
                stop=self._stop,
                pool=loaded.upstream.pool,
            )
            return
        call = invoke(request, metadata=metadata, timeout=timeout or self.config.deadline)
        reply = await await_unless_gone(call, receive, loaded.upstream.pool)
        if reply.DESCRIPTOR.full_name == openapi.HTTP_BODY:  # raw, as grpc-gateway does
            content_type = reply.content_type or openapi.OCTETS
            await send_bytes(
                send, 200, reply.data, base, content_type=content_type.encode("latin-1")
            )
            return
        payload = marshal.to_json_bytes(reply, route.response_body)
        await send_bytes(send, 200, payload, base, gzip_ok=wants_gzip(headers))

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
