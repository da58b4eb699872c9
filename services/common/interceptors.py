"""Server interceptors every service installs, outermost first:

1. `RequestInterceptor`: takes the request id from `x-request-id` (or makes
   one), logs one structured line per request (a stream's when it ends; one
   cancelled by its caller or the server's stop is `CANCELLED`), counts and
   times it when given `RequestMetrics` (`metrics.py`), and maps `SfmeshError`
   to a rich gRPC status — errors are translated here and nowhere else. Before any
   answer leaves (a reply, each message of a stream, an error) it awaits what
   the request asked for through `await_before_answer`: the event emitter asks
   it so that a request's events are durable before the caller hears back.
2. `AuthInterceptor`: enforces each RPC's `(sfmesh.v1.access)` option and
   records who is calling. A service may give it a further `check` of the
   verified caller (the api checks that a user token was not revoked). With
   TLS an internal caller is the identity in its verified certificate, and
   any token it sends is ignored; in plaintext mode it is the internal token.

The request id, the caller and what to await before answering live in
context variables, read through `request_id()`, `caller()` and set through
`await_before_answer()`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from sfmesh.v1 import options_pb2

from services.common import errors
from services.common.handlers import Behavior, wrap_handler
from services.common.metrics import RequestMetrics
from services.common.tokens import Caller, TokenAuthority
from services.common.transport import peer_identity

log = logging.getLogger("sfmesh.requests")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)

CallerCheck = Callable[[Caller], Awaitable[None]]
"""Runs after a token is verified; raises (e.g. Unauthenticated) to refuse it."""
Wait = Callable[[], Awaitable[None]]
"""Something a request awaits before it answers; must not raise."""

_waits: contextvars.ContextVar[list[Wait] | None] = contextvars.ContextVar("waits", default=None)


def request_id() -> str:
    """The id of the request being served."""
    return _request_id.get()


def await_before_answer(wait: Wait) -> None:
    """Have the request being served await `wait()` before its answer, or its
    stream's next message, leaves; asked twice, it awaits once. Outside a
    request this does nothing. Requests that never ask pay nothing."""
    waits = _waits.get()
    if waits is not None and wait not in waits:
        waits.append(wait)


def caller() -> Caller:
    """The authenticated caller of the request being served."""
    found = _caller.get()
    if found is None:
        raise errors.Unauthenticated("Missing Authorization Header", reason="NO_TOKEN")
    return found


def _metadata(details: grpc.HandlerCallDetails, name: str) -> str | None:
    for key, value in details.invocation_metadata or ():
        if key == name:
            return str(value)
    return None


GRPC_REQUESTS = RequestMetrics("sfmesh_grpc", ("method",), what="gRPC requests")
"""`sfmesh_grpc_requests_total{method,code}` and
`sfmesh_grpc_request_duration_seconds{method}`: `method` is the full method
name (`/sfmesh.v1.InstanceService/GetInstance`), `code` the status code's
name (`OK`, `NOT_FOUND`, `CANCELLED`…)."""


class RequestInterceptor(grpc.aio.ServerInterceptor):
    """Request ids, one log line per request, its metrics, and the error mapping."""

    def __init__(self, metrics: RequestMetrics | None = None) -> None:
        """`metrics`: where each request is counted and timed; None records nothing."""
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        served = _Served(details.method, self._metrics)
        rid = _metadata(details, "x-request-id") or str(uuid.uuid4())

        def wrapper(behavior: Behavior, streams: bool) -> Behavior:
            if streams:

                async def streaming(
                    request: Any, context: grpc.aio.ServicerContext
                ) -> AsyncIterator[Any]:
                    async with _serving(served, rid, context) as waits:
                        async for reply in behavior(request, context):
                            if waits:
                                await _settle(waits)
                            yield reply

                return streaming

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with _serving(served, rid, context):
                    return await behavior(request, context)

            return unary

        return wrap_handler(handler, wrapper)


@dataclass(frozen=True)
class _Served:
    """The method served and where its requests are counted."""

    method: str
    metrics: RequestMetrics | None

    def finish(self, rid: str, started: float, code: str, message: str | None) -> None:
        """Log one request's outcome and record it."""
        seconds = time.perf_counter() - started
        fields = {
            "method": self.method,
            "code": code,
            "request_id": rid,
            "duration_ms": round(seconds * 1000, 2),
        }
        if message:
            fields["error"] = message
        log.info("request", extra={"fields": fields})
        if self.metrics is not None:
            self.metrics.observe((self.method,), code, seconds)


@contextlib.asynccontextmanager
async def _serving(
    served: _Served, rid: str, context: grpc.aio.ServicerContext
) -> AsyncIterator[list[Wait]]:
    """Around one request: set its id, settle what it must await before
    answering, log and record its outcome, map domain errors. Yields the
    list of waits still to settle."""
    _request_id.set(rid)
    waits: list[Wait] = []
    _waits.set(waits)
    context.set_trailing_metadata((("x-request-id", rid),))
    started = time.perf_counter()
    try:
        yield waits
    except Exception as exc:
        if waits:
            await _settle(waits)  # an error answers too, and a refusal's events count
        if not isinstance(exc, errors.SfmeshError):
            served.finish(rid, started, "UNKNOWN", repr(exc))
            raise
        served.finish(rid, started, exc.code.name, exc.message)
        await context.abort_with_status(errors.to_status(exc, request_id=rid))
    except BaseException:  # cancelled: the caller left, or the server is stopping
        served.finish(rid, started, "CANCELLED", None)
        raise
    else:
        if waits:
            await _settle(waits)
        served.finish(rid, started, "OK", None)


async def _settle(waits: list[Wait]) -> None:
    """Await, oldest first, what the request asked to await before answering."""
    while waits:
        await waits.pop(0)()


@functools.lru_cache(maxsize=1024)
def method_access(method: str) -> int:
    """The `(sfmesh.v1.access)` of a full method name such as `/pkg.Svc/Rpc`.

    Methods outside the sfmesh contracts (health, reflection) are anonymous.
    Asked on every RPC of a served method, so remembered (3.7 us to 0.1 us).
    """
    service, _, name = method.lstrip("/").rpartition("/")
    if not service.startswith("sfmesh."):
        return options_pb2.ACCESS_ANONYMOUS
    descriptor = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    access: int = descriptor.GetOptions().Extensions[options_pb2.access]  # type: ignore[index]
    return access or options_pb2.ACCESS_USER


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Checks the bearer token, or for internal RPCs with TLS the client
    certificate, each RPC's access option asks for."""

    def __init__(
        self,
        authority: TokenAuthority,
        *,
        check: CallerCheck | None = None,
        certificates: bool = False,
    ) -> None:
        """`certificates`: internal callers prove themselves by their mesh
        certificate (TLS) rather than by an internal token (plaintext)."""
        self._authority = authority
        self._check = check
        self._certificates = certificates

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        access = method_access(details.method)
        if access == options_pb2.ACCESS_ANONYMOUS:
            return handler
        header = _metadata(details, "authorization")
        internal = access == options_pb2.ACCESS_INTERNAL

        def wrapper(behavior: Behavior, streams: bool) -> Behavior:
            if streams:

                async def streaming(
                    request: Any, context: grpc.aio.ServicerContext
                ) -> AsyncIterator[Any]:
                    _caller.set(await self._authenticate(header, internal, context))
                    async for reply in behavior(request, context):
                        yield reply

                return streaming

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                _caller.set(await self._authenticate(header, internal, context))
                return await behavior(request, context)

            return unary

        return wrap_handler(handler, wrapper)

    async def _authenticate(
        self, header: str | None, internal: bool, context: grpc.aio.ServicerContext
    ) -> Caller:
        """The caller the token or certificate proves, once the service's
        `check` accepts it."""
        if internal and self._certificates:
            verified = _certified(context)
        else:
            verified = self._verify(header, internal)
        if self._check is not None:
            await self._check(verified)
        return verified

    def _verify(self, header: str | None, internal: bool) -> Caller:
        if not header:
            raise errors.Unauthenticated("Missing Authorization Header", reason="NO_TOKEN")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise errors.Unauthenticated(
                "Missing 'Bearer' type in 'Authorization' header. "
                "Expected 'Authorization: Bearer <JWT>'",
                reason="NOT_BEARER",
            )
        return self._authority.verify(token.strip(), internal=internal)


def _certified(context: grpc.aio.ServicerContext) -> Caller:
    """The internal caller named by the mesh certificate the connection
    presented; Unauthenticated without one. A token cannot stand in."""
    identity = peer_identity(context)
    if identity is None:
        raise errors.Unauthenticated(
            "internal calls need a client certificate of the mesh CA", reason="NO_CERTIFICATE"
        )
    return Caller(
        namespace="system",
        key_name=identity.service,
        nonce="",
        internal=True,
        host=identity.host,
    )
