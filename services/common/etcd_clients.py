"""The members of one etcd cluster as the store reaches them: a client per
endpoint, the one in use, and failing over to the next when it stops
answering.

aetcd 1.0 talks to one `host:port`, so this module does what etcd's own Go
client does with several endpoints: it keeps using one member while it
answers, and when a call finds it unreachable (UNAVAILABLE, or no answer by
the deadline: a killed member, a lost host, a member that lost its leader) it
moves on to the next, round the list. A call that is safe to repeat (a read,
a lease keep-alive) is sent again there, with a short pause between rounds,
until `timeout` has passed since it began; the store decides itself what a
write whose answer was lost may do (`txn_outcome.py`). With one endpoint
nothing is repeated: an unreachable etcd answers `errors.Unavailable` at
once, as it always has.

Every member keeps its channel for the store's life: a member that comes
back is used again when the one in use fails, and no call in flight on an
old channel is cut short by a close. Channels come from the process's
`Transport` (`MeshClient`): mutual TLS with the mesh CA when it has one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import aetcd.watcher
import grpc
from aetcd import rpc

from services.common import errors
from services.common.config import split_address
from services.common.etcd_metrics import REQUEST_SECONDS, RETRIES, Operation
from services.common.transport import Transport

T = TypeVar("T")

RETRY_AFTER = 1
"""Seconds a caller refused for an unreachable etcd is told to wait: a
restarted or unfrozen etcd serves again within about that."""
PAUSE_START = 0.05
PAUSE_MAX = 0.5
"""Seconds between two rounds of a repeated call: the first retry goes to
the next member at once; an election among the survivors takes about a
second (etcd's default election timeout)."""
ATTEMPT_MAX = 2.0
"""With several members, the deadline of one attempt (at most the store's
`timeout`): a request sent to a follower whose leader was just killed hangs
until etcd's own timeout (7 s), and it is quicker to give up on it, fail
over, and resolve it (the rule makes that safe for writes too) than to wait.
An election among the survivors takes about a second."""
_UNREACHABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    # etcd 3.4 answers UNKNOWN "context deadline exceeded" when the call's
    # deadline ran out inside the server (a proposal waiting for a new leader)
    grpc.StatusCode.UNKNOWN,
}
_TOO_LARGE = grpc.StatusCode.INVALID_ARGUMENT

log = logging.getLogger(__name__)


class MeshClient(aetcd.Client):
    """An aetcd client whose channel comes from this process's transport:
    with TLS, etcd's certificate is checked against the mesh CA and this
    process presents its own (etcd runs with `--client-cert-auth`).

    aetcd 1.0's `connect` opens only insecure channels, so this one opens the
    channel and the stubs itself; it never authenticates by password (the
    mesh does not use etcd's users), so it has nothing to await.
    """

    def __init__(self, endpoint: str, *, timeout: float, transport: Transport) -> None:
        host, port = split_address(endpoint)
        super().__init__(host=host, port=port, timeout=timeout)  # type: ignore[arg-type]
        self._transport = transport

    async def connect(self) -> None:
        """Open the channel and its stubs, once (a closed client opens again)."""
        if self._connected.is_set():
            return
        self.channel = self._transport.channel(f"{self._host}:{self._port}", traced=False)
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = aetcd.watcher.Watcher(
            rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
        )
        self._connected.set()


class EtcdClients:
    """One client per endpoint of a cluster, and which one is in use."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float, transport: Transport) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoint")
        self.endpoints = tuple(endpoints)
        self.timeout = timeout
        attempt = min(timeout, ATTEMPT_MAX) if len(endpoints) > 1 else (int(timeout) or 1)
        self._clients = [
            MeshClient(endpoint, timeout=attempt, transport=transport)
            for endpoint in self.endpoints
        ]
        self._at = 0

    async def close(self) -> None:
        """Close every member's channel."""
        for client in self._clients:
            await client.close()

    def current(self) -> tuple[int, aetcd.Client]:
        """The index and client of the member in use."""
        return self._at, self._clients[self._at]

    def fail_over(self, at: int) -> None:
        """The member at `at` did not answer: use the next one, unless
        another caller has already moved on."""
        if self._at == at and len(self._clients) > 1:
            self._at = (at + 1) % len(self._clients)
            log.warning(
                "etcd member %s unreachable; using %s",
                self.endpoints[at],
                self.endpoints[self._at],
            )

    def deadline(self) -> float:
        """Until when (monotonic clock) a call begun now may be repeated on
        other members: `timeout` seconds with several, none with one."""
        return time.monotonic() + (self.timeout if len(self._clients) > 1 else 0.0)

    async def once(
        self, send: Callable[[aetcd.Client], Awaitable[T]], *, operation: Operation
    ) -> T:
        """`send` to the member in use, once, timed as `operation`; on
        `errors.Unavailable` the next call goes to the next member."""
        at, client = self.current()
        try:
            async with mapped_errors():
                await client.connect()
                with REQUEST_SECONDS.labels(operation).time():
                    return await send(client)
        except errors.Unavailable:
            self.fail_over(at)
            raise

    async def call(
        self,
        send: Callable[[aetcd.Client], Awaitable[T]],
        *,
        operation: Operation,
        deadline: float | None = None,
    ) -> T:
        """`send`, which must be safe to repeat, to the member in use, and
        to the next ones while they are unreachable, until `deadline`
        (`self.deadline()` by default): then `errors.Unavailable`."""
        until = self.deadline() if deadline is None else deadline
        pause = 0.0
        while True:
            try:
                return await self.once(send, operation=operation)
            except errors.Unavailable:
                if time.monotonic() + pause >= until:
                    raise
            await asyncio.sleep(pause)
            RETRIES.labels(operation).inc()
            pause = min(max(pause * 2, PAUSE_START), PAUSE_MAX)


def call_options(client: aetcd.Client) -> dict[str, Any]:
    """The deadline and credentials of a call on `client`'s stubs."""
    return {"timeout": client._timeout, "metadata": client.metadata}


class mapped_errors:
    """Turn etcd connection failures and timeouts into `errors.Unavailable`
    with a retry hint (503 with Retry-After over REST), and a request etcd
    refuses for its size into `errors.InvalidArgument` (400)."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        # aetcd raises its own errors from the gRPC one, which has the code;
        # etcd answers INVALID_ARGUMENT "request is too large" near REQUEST_BYTES
        answer = exc.__cause__ if isinstance(exc, aetcd.exceptions.ClientError) else exc
        if isinstance(answer, grpc.aio.AioRpcError) and answer.code() == _TOO_LARGE:
            raise errors.InvalidArgument(
                f"etcd refused the request: {answer.details()}", reason="ETCD_REQUEST_REFUSED"
            ) from exc
        unreachable = isinstance(exc, aetcd.exceptions.ClientError) or (
            isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _UNREACHABLE
        )
        if unreachable:
            raise errors.Unavailable(
                f"etcd is unavailable: {exc}", reason="ETCD_UNAVAILABLE", retry_after=RETRY_AFTER
            ) from exc
