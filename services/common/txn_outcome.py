"""Whether a transaction whose answer was lost applied: the store's rule for
retrying a write after a member died under it.

A transaction sent to a member that then dies (or stops answering) has an
unknown outcome: the member may have proposed it to the cluster, which may
commit it before, during or after the failover. Sending it again blindly is
not safe, even though every sfmesh write compares `mod_revision`s:

- Two copies of one compare-and-swap cannot both apply (the first moves the
  revisions the second compares), so nothing is written twice.
- But when the first copy applied, the second fails its compare, and the
  store would answer "someone else got there first". `Store.update` then
  reads the record again, finds its own change, and applies it a second
  time: an increment counted twice.
- Nor can the answer be read off the data: another writer that read the
  same record may have written the very same bytes (two increments of 5 both
  write 6), and then "the key holds my value" is a lost increment.

So each transaction also writes a token (8 random bytes) to this store's own
key `/sfmesh/writer/<uuid>`, outside `/sfmesh/v1/` (no watch or listing of
records sees it). Before the first send the store notes a revision it has
already seen (`floor`): the transaction, if it applies, writes above it.
After a lost answer, on the next member: `written()` reads the writer key
and, when needed, its history since `floor` (a watch from `floor + 1`,
which etcd answers from its history at once), and says whether one of the
transaction's tokens was written there, and at which revision.

- Written: the transaction applied; the store answers that revision.
- Not written (yet): it is sent again with a new token. Still in flight, the
  old copy and the new one exclude each other by their compares, so exactly
  one applies; if the new one then fails its compare, the tokens are looked
  for once more, and only if none is found is the answer "changed by someone
  else". One gap remains: an old copy that compares a key's absence and
  is still in flight after that key was created and then deleted again
  could apply late. A member that dies has its proposals decided within an
  election (about a second); that create-then-delete would have to fit in.
- Unknowable (the cluster stays unreachable past the store's deadline, or
  etcd compacted the history since `floor`): `errors.Unavailable`, as a lost
  answer has always been, and the caller decides.

A transaction with no compares (a blind put) may apply twice this way; it
writes the same values both times.

The cost: each write carries one more small put, in the same transaction and
Raft entry; one key per store, deleted when the store closes (a process
killed leaves its ~40 bytes behind).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Collection
from typing import Any

import aetcd
import grpc
from aetcd import rpc

from services.common import errors
from services.common.etcd_clients import RETRY_AFTER, call_options

WRITER_PREFIX = b"/sfmesh/writer/"


def writer_key() -> bytes:
    """A new store's own key, written by each of its transactions."""
    return WRITER_PREFIX + uuid.uuid4().hex.encode()


def new_token() -> bytes:
    """What one send of a transaction writes at its store's key."""
    return os.urandom(8)


def token_put(writer: bytes, token: bytes) -> Any:
    """The operation a transaction carries to write `token`."""
    return rpc.RequestOp(request_put=rpc.PutRequest(key=writer, value=token))


async def revision_now(client: aetcd.Client, writer: bytes) -> int:
    """The cluster's revision now (read with the writer key)."""
    reply = await client.kvstub.Range(rpc.RangeRequest(key=writer), **call_options(client))
    return int(reply.header.revision)


async def written(
    client: aetcd.Client, writer: bytes, tokens: Collection[bytes], floor: int
) -> int:
    """The revision at which one of `tokens` was written at `writer` after
    `floor`, or 0 when none was (a linearizable read, then the key's history
    when another write of this store came after)."""
    reply = await client.kvstub.Range(rpc.RangeRequest(key=writer), **call_options(client))
    if not reply.kvs or reply.kvs[0].mod_revision <= floor:
        return 0
    newest = reply.kvs[0]
    if newest.value in tokens:
        return int(newest.mod_revision)
    call = rpc.WatchStub(client.channel).Watch(metadata=client.metadata)
    try:
        async with asyncio.timeout(client._timeout):
            create = rpc.WatchCreateRequest(key=writer, start_revision=floor + 1)
            await call.write(rpc.WatchRequest(create_request=create))
            while True:
                answer = await call.read()
                if answer is grpc.aio.EOF or answer.canceled:
                    raise _unknown("etcd ended the watch of its history")
                if answer.compact_revision:
                    raise _unknown("etcd compacted the history since the write")
                for event in answer.events:
                    if event.kv.value in tokens:
                        return int(event.kv.mod_revision)
                    if event.kv.mod_revision >= newest.mod_revision:
                        return 0
    except TimeoutError:
        raise _unknown("etcd did not answer with its history in time") from None
    finally:
        call.cancel()


def _unknown(why: str) -> errors.Unavailable:
    return errors.Unavailable(
        f"etcd is unavailable: a write's outcome is unknown ({why})",
        reason="ETCD_UNAVAILABLE",
        retry_after=RETRY_AFTER,
    )
