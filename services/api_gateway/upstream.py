"""The generic call to the upstream, made from the reflected descriptors.

Requests go up as serialised bytes.

- A server stream is called through one `grpc.aio` multi-callable per RPC,
  made once; its messages are parsed with the output type's message class.
- A client stream (a raw request body in chunks, see `uploads`) goes to
  grpc's core call too, bytes in and bytes out (`ClientStream` says why).
- A unary call goes to grpc's core call directly and answers the reply's
  bytes (the gateway renders them, see `replies`). grpc.aio's public unary
  call wraps the same core call in a task and a call object: two more turns
  of the event loop and about 85 us on every request, measured with two
  gateways side by side behind one api. The core call is the Cython channel
  that `grpc.aio.Channel` wraps, an internal of grpcio; grpcio is pinned in
  pyproject.toml, and `tests/unit/api_gateway/test_upstream.py` checks every
  behaviour used here (reply, error status and trailers, deadline,
  cancellation) against a real server, so an upgrade that changes it fails
  there.

A unary call is cancelled when the client disconnects; its gRPC failure
becomes an `UpstreamError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor_pool import DescriptorPool

from services.api_gateway import routes
from services.api_gateway.errors import UpstreamError, reply_from_status
from services.api_gateway.responses import ClientGone, wait_disconnect
from services.api_gateway.types import Receive
from services.common.channels import quick_reconnect

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20), *quick_reconnect()]
"""The upstream channel's options: large replies, and a reconnect backoff
of at most a quarter second, so a restarted api is served again at once."""
Metadata = tuple[tuple[str, str], ...]

_WATCH_AFTER = 0.05
"""Seconds a unary call runs before the gateway starts watching for a disconnect."""
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_CANCELLED = "cancelled by the gateway"


class MultiCallables:
    """The multi-callables of one kind of the upstream's RPCs, each made once:
    `make` is the channel's `unary_stream` (server streams) or
    `stream_stream` (the WebSocket routes)."""

    def __init__(self, make: Callable[..., Any]) -> None:
        self._make = make
        self._made: dict[str, Any] = {}

    def get(self, route: routes.Route) -> Any:
        """The multi-callable of `route`'s RPC: takes bytes, yields parsed messages."""
        invoke = self._made.get(route.rpc_path)
        if invoke is None:
            output = message_factory.GetMessageClass(route.method.output_type)
            invoke = self._make(
                route.rpc_path, response_deserializer=output.FromString, _registered_method=True
            )
            self._made[route.rpc_path] = invoke
        return invoke


class CoreCalls:
    """Unary and client-streaming calls on the channel's core, bytes in and bytes out."""

    def __init__(self, channel: grpc.aio.Channel, pool: DescriptorPool | None) -> None:
        self._core = channel._channel
        self._pool = pool
        self._methods: dict[str, tuple[bytes, int]] = {}

    async def unary(
        self, rpc_path: str, request: bytes, metadata: Metadata, seconds: float, receive: Receive
    ) -> bytes:
        """Make one call with a deadline `seconds` from now; raise UpstreamError
        when it fails, ClientGone when the client left first.

        Watching for a disconnect costs a task and a pending `receive()` (about
        0.3 ms a request), so the watch starts only once a call has run for
        `_WATCH_AFTER` seconds: quick calls pay only for a timer, and a client
        that left is still noticed within that delay.
        """
        method, handle = self._method(rpc_path)
        core = self._core.call(method, time.time() + seconds, None, None, handle)
        watcher: asyncio.Future[None] | None = None

        def cancel_core(_: object) -> None:
            if not core.done():
                core.cancel(_CANCELLED)

        def watch() -> None:
            nonlocal watcher
            watcher = asyncio.ensure_future(wait_disconnect(receive))
            watcher.add_done_callback(cancel_core)

        timer = asyncio.get_running_loop().call_later(_WATCH_AFTER, watch)
        try:
            reply = await core.unary_unary(request, metadata, None)
        except asyncio.CancelledError:
            cancel_core(None)
            raise
        finally:
            timer.cancel()
            gone = watcher is not None and watcher.done() and not watcher.cancelled()
            if watcher is not None:
                watcher.remove_done_callback(cancel_core)
                watcher.cancel()
        if core.is_ok():
            return bytes(reply)
        if gone:
            raise ClientGone
        raise await _failure(core, self._pool)

    def client_stream(
        self, rpc_path: str, metadata: Metadata, seconds: float | None
    ) -> ClientStream:
        """Start a client-streaming call, with a deadline `seconds` from now if given."""
        method, handle = self._method(rpc_path)
        deadline = None if seconds is None else time.time() + seconds
        core = self._core.call(method, deadline, None, None, handle)
        return ClientStream(core, metadata, self._pool)

    def _method(self, rpc_path: str) -> tuple[bytes, int]:
        """The method's path as bytes and its registered-call handle, made once."""
        found = self._methods.get(rpc_path)
        if found is None:
            path = rpc_path.encode("ascii")
            found = self._methods[rpc_path] = (path, self._core.get_registered_call_handle(path))
        return found


class ClientStream:
    """One client-streaming call on the channel's core: chunks of bytes in,
    the reply's bytes out.

    An upstream may answer before the stream ends (a bad token is refused
    at once). grpc.aio's own `write` reports the write that races such an
    answer as an INTERNAL error of its own, hiding the upstream's status; on
    the core, a failed write only ends the writing, and the call's own status
    is the answer.
    """

    def __init__(self, core: Any, metadata: Metadata, pool: DescriptorPool | None) -> None:
        self._core = core
        self._pool = pool
        self._sent = asyncio.Event()
        self._writing = True
        self._reply = asyncio.ensure_future(core.stream_unary(metadata, self._sent.set, None))

    async def write(self, data: bytes) -> bool:
        """Send one message; False once the upstream has ended the call."""
        if self._writing and not self._sent.is_set():
            await self._sent.wait()
        if self._writing and not self._core.done():
            try:
                await self._core.send_serialized_message(data)
            except asyncio.CancelledError:
                self.cancel()
                raise
            except Exception:  # the call ended under the write: finish() says how
                self._writing = False
        else:
            self._writing = False
        return self._writing

    async def finish(self) -> bytes:
        """End the writing and wait for the reply; raise UpstreamError when
        the call failed."""
        try:
            if self._writing and not self._core.done():
                self._writing = False
                with contextlib.suppress(Exception):  # ended meanwhile: the status says how
                    await self._core.send_receive_close()
            reply = await self._reply
        except asyncio.CancelledError:
            self.cancel()
            raise
        if self._core.is_ok():
            return bytes(reply)
        raise await _failure(self._core, self._pool)

    def cancel(self) -> None:
        """Cancel the call (the client left, or its body was refused)."""
        self._writing = False
        if not self._core.done():
            self._core.cancel(_CANCELLED)
        self._reply.cancel()


async def _failure(core: Any, pool: DescriptorPool | None) -> UpstreamError:
    """The error of a failed core call, from its status. A call the api
    cancelled itself (a replica stopping: gRPC cancels what is still in
    flight when its grace ends, and what arrives after its stop began) is
    an outage, 503, which a client may retry at once, not the 499 of a
    client that left."""
    status = await core.status()
    code = _CODES.get(status.code(), grpc.StatusCode.UNKNOWN)
    details = status.details() or ""
    if code == grpc.StatusCode.CANCELLED and details != _CANCELLED:
        code, details = grpc.StatusCode.UNAVAILABLE, f"the api stopped before answering: {details}"
    return UpstreamError(reply_from_status(code, details, status.trailing_metadata(), pool))
