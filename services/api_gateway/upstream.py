"""The generic call to the upstream: multi-callables built from descriptors.

Every RPC is called through one `grpc.aio` multi-callable made once from the
reflected descriptors (request serialised as is, response parsed with the
output type's message class). A unary call is cancelled when the client
disconnects; its gRPC failure becomes an `UpstreamError`.
"""

from __future__ import annotations

import asyncio
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
_WATCH_AFTER = 0.05
"""Seconds a unary call runs before the gateway starts watching for a disconnect."""


class Callables:
    """The generic multi-callables of the upstream's RPCs, each made once."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._made: dict[str, Any] = {}

    def get(self, route: routes.Route) -> Any:
        """The multi-callable of `route`'s RPC (unary-stream for streaming routes)."""
        invoke = self._made.get(route.rpc_path)
        if invoke is None:
            output = message_factory.GetMessageClass(route.method.output_type)
            factory = (
                self._channel.unary_stream if route.server_streaming else self._channel.unary_unary
            )
            invoke = factory(
                route.rpc_path,
                request_serializer=_serialize,
                response_deserializer=output.FromString,
            )
            self._made[route.rpc_path] = invoke
        return invoke


async def await_unless_gone(call: Any, receive: Receive, pool: DescriptorPool) -> Any:
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
