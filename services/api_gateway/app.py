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
import html
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson
from google.protobuf import message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.api_gateway import apidocs, marshal, openapi, routes
from services.api_gateway.config import GatewayConfig
from services.api_gateway.descriptors import UpstreamDescriptors, load_descriptors
from services.api_gateway.errors import GatewayError, UpstreamError, reply_from_status
from services.api_gateway.responses import (
    ClientGone,
    Headers,
    read_body,
    send_bytes,
    send_error,
    wait_disconnect,
    wants_gzip,
)
from services.api_gateway.streams import StreamSettings, forward_stream
from services.api_gateway.transcode import RequestParts, build_request, split_access_token
from services.api_gateway.types import Receive, Scope, Send

log = logging.getLogger(__name__)

_GRPC_TIMEOUT = re.compile(r"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_CORS_HEADERS: Headers = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"x-request-id, retry-after"),
]
_WATCH_AFTER = 0.05
"""Seconds a unary call runs before the gateway starts watching for a disconnect."""
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20)]


@dataclass
class _Loaded:
    """What start-up produced."""

    upstream: UpstreamDescriptors
    table: routes.RouteTable
    index_html: bytes
    callables: dict[str, Any] = field(default_factory=dict)
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
        self._channel = grpc.aio.insecure_channel(self.config.api_address, _CHANNEL_OPTIONS)
        upstream = await load_descriptors(self._channel, stop=self._stop)
        if upstream is None:
            return
        table = routes.build_routes(upstream.services)
        document = openapi.build_openapi(upstream.services, upstream.comments)
        self._loaded = _Loaded(
            upstream,
            table,
            _index_page(routes.capabilities(upstream.services)),
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
        headers = _headers(scope)
        given_id = headers.get("x-request-id")
        # gRPC metadata takes printable ASCII only; any other id is replaced.
        request_id = given_id if given_id and _metadata_safe(given_id) else str(uuid.uuid4())
        base: Headers = [(b"x-request-id", request_id.encode("latin-1"))]
        if "origin" in headers:
            # Tokens travel in headers or the query, never in cookies, so any
            # origin may read answers (browsers' fetch and EventSource).
            base += _CORS_HEADERS
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
        if authorization is not None and not _metadata_safe(authorization):
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
        timeout = _grpc_timeout(headers.get("grpc-timeout"))
        invoke = self._callable(loaded, route)
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
        reply = await _await_unless_gone(call, receive, loaded.upstream.pool)
        payload = marshal.to_json_bytes(reply, route.response_body)
        await send_bytes(send, 200, payload, base, gzip_ok=wants_gzip(headers))

    def _callable(self, loaded: _Loaded, route: routes.Route) -> Any:
        """The generic multi-callable of an RPC, made once."""
        invoke = loaded.callables.get(route.rpc_path)
        if invoke is None:
            assert self._channel is not None  # set by start()
            output = message_factory.GetMessageClass(route.method.output_type)
            factory = (
                self._channel.unary_stream if route.server_streaming else self._channel.unary_unary
            )
            invoke = factory(
                route.rpc_path,
                request_serializer=_serialize,
                response_deserializer=output.FromString,
            )
            loaded.callables[route.rpc_path] = invoke
        return invoke

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


async def _await_unless_gone(call: Any, receive: Receive, pool: DescriptorPool) -> Any:
    """Await a unary call; cancel it if the client disconnects first.

    Watching for a disconnect costs a task and a pending `receive()` (about
    0.3 ms a request, measured with bench/gateway.py), so the watcher starts
    only once a call has run for `_WATCH_AFTER` seconds: quick calls pay only
    for a timer, and a client that left is still noticed within that delay.
    """
    watcher: asyncio.Future[Any] | None = None

    def cancel_call(_: asyncio.Future[Any]) -> None:
        call.cancel()

    def watch() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(wait_disconnect(receive))
        watcher.add_done_callback(cancel_call)

    timer = asyncio.get_running_loop().call_later(_WATCH_AFTER, watch)
    try:
        return await call
    except asyncio.CancelledError:
        if watcher is not None and watcher.done():
            raise ClientGone from None
        raise
    except grpc.aio.AioRpcError as exc:
        metadata = exc.trailing_metadata()
        reply = reply_from_status(exc.code(), exc.details() or "", metadata, pool)
        raise UpstreamError(reply) from None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.remove_done_callback(cancel_call)
            watcher.cancel()


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        found[name] = f"{found[name]}, {value}" if name in found else value
    return found


def _metadata_safe(value: str) -> bool:
    """Whether gRPC accepts `value` as an ASCII metadata value."""
    return value.isascii() and value.isprintable()


def _grpc_timeout(value: str | None) -> float | None:
    """Parse a `Grpc-Timeout` header (e.g. "5S", "100m") into seconds."""
    if value is None:
        return None
    match = _GRPC_TIMEOUT.match(value.strip())
    if match is None:
        raise GatewayError(400, f"bad Grpc-Timeout header {value!r}")
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]


def _index_page(capabilities: list[str]) -> bytes:
    items = "".join(f"<li>{html.escape(c)}</li>\n" for c in capabilities)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>sfmesh REST API</title>'
        "</head><body>\n<h1>sfmesh REST API</h1>\n<p>Capabilities:</p>\n<ul>\n"
        f"{items}</ul>\n</body></html>\n"
    ).encode()
