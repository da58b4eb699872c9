"""Wrapping a gRPC handler's behaviour, for server interceptors that run code
around every request (`interceptors.py`, `tracing.py`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import grpc

Behavior = Callable[..., Any]
Wrapper = Callable[[Behavior, bool], Behavior]
"""Wraps one handler behaviour; the flag says whether it answers a stream."""


def wrap_handler(handler: grpc.RpcMethodHandler, wrapper: Wrapper) -> grpc.RpcMethodHandler:
    """A copy of `handler` whose behaviour goes through `wrapper`. A
    streaming behaviour that is a coroutine writing its replies with
    `context.write` (grpc's health `Watch`) is wrapped as a unary one is:
    awaited, not iterated."""
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
        ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
        ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
        ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
    )
    for attribute, build, streams in kinds:
        behavior = getattr(handler, attribute)
        if behavior is not None:
            return build(
                wrapper(behavior, streams and inspect.isasyncgenfunction(behavior)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler
