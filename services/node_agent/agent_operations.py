"""Agent operations of this node's instances (guest-access reference §5.5,
with quirks 8, 9, 11 and 13 decided): a queue per instance that runs its
operations one at a time, in the order they were submitted, through the
instance's agent monitor.

An operation arrives `queued` (the api recorded it and called
`RunAgentOperation`); its record is compare-and-swapped to `executing`,
each command runs under the operation's deadline (`deadline_seconds`, the
wait for the agent's turn included; a get also errs after `GET_IDLE`
seconds without a chunk), each result is written as it comes, and the
operation ends `complete` or `error` with the reason in `error`. Nothing
waits forever: no monitor (the instance is off), an agent not ready within
the deadline, a connection that ends, an agent that restarts or answers an
error — each ends the operation `error` at once, and the queue moves on.
An operation deleted meanwhile is left as deleted.

Output: `stdout`/`stderr` over 10,240 characters move into blobs
(`stdout_blob`/`stderr_blob`); a fetched file becomes a blob
(`content_blob`). Each is a new `created` blob on this node, owned by the
instance's namespace (as screenshots are) and named in the record's
`output_blobs`, which the api releases with the operation. A blob's record
is written in the one transaction that records the command's result on the
operation, while it is still `executing`: an operation deleted (or its
record purged, its instance gone) while the command ran gets neither, and
the file goes at once, so no output blob outlives the record that names it.
An empty file makes an empty blob (Shaken Fist's get of an empty file
hangs, quirk 9).
Agent 0.3.18 drops a frame it cannot write at once to a full port; a get
whose chunk offsets skip one reads the rest to the terminator and fetches
the file again (three attempts in all), so a blob is never a file with a
hole.

On start (`resume`), the operations of this node left `executing` by a
previous run are `error` (the agent's state is unknown), and the
`preflight` and `queued` ones are queued again. A put arrives `preflight`:
at the head of the queue its blob is made whole here (within the deadline;
a failure is `error`, not a blocked queue), then it runs: the blob streamed
as `put-file` chunks without waiting, only the terminator's ack awaited
(quirk 7), then `chmod`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import time
import uuid as uuid_module
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from sfmesh.v1 import agent_operation_pb2, artifact_pb2, event_pb2, records_pb2

from services.common import errors
from services.common.events import EventSink
from services.common.store import Operation, Put, Store, key, kind_prefix
from services.node_agent.agent_monitor import AgentError, AgentMonitor
from services.node_agent.blob_store import BlobStore

log = logging.getLogger("sfmesh.node_agent.agentops")

OPERATION = "agent_operation"
"""The etcd kind of operation records."""
OUTPUT_LIMIT = 10240
"""Characters of stdout or stderr kept inline; longer output moves into a blob."""
GET_IDLE = 30.0
"""Seconds a get may wait for the next chunk."""
PUT_CHUNK = 4096
"""Bytes of a blob in one put-file frame ([B]: 1,024; the agent takes any:
fewer frames cost its single guest thread less, and it re-decodes its whole
buffer at every 4 KiB read, so frames stay small)."""
PUT_READ = 1024 * 1024
"""Bytes of a blob read from disk at a time, off the event loop."""
GET_ATTEMPTS = 3
"""Fetches of a file before a get whose chunks keep going missing errs."""
BLOB_VIEW_VERSION = 6
RESULT_ATTEMPTS = 8
"""Writes of a result that conflict before it errs: a conflict is a
`DELETE` or the purge, which the next attempt sees; only a blob uuid taken
meanwhile would keep failing."""

State = agent_operation_pb2.AgentOperationState
PREFLIGHT = agent_operation_pb2.AGENT_OPERATION_STATE_PREFLIGHT
QUEUED = agent_operation_pb2.AGENT_OPERATION_STATE_QUEUED
EXECUTING = agent_operation_pb2.AGENT_OPERATION_STATE_EXECUTING
COMPLETE = agent_operation_pb2.AGENT_OPERATION_STATE_COMPLETE
ERROR = agent_operation_pb2.AGENT_OPERATION_STATE_ERROR
DELETED = agent_operation_pb2.AGENT_OPERATION_STATE_DELETED


class OperationFailed(Exception):
    """A command could not be carried out; the message says why."""

    def __init__(self, message: str, result: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result
        """The command's result to record anyway (a get's refusal)."""


class ChunkLost(Exception):
    """A get's chunks skipped an offset: the agent dropped one."""


class Gone(Exception):
    """The operation's record was deleted, or left the state expected."""


@dataclass(frozen=True)
class Output:
    """A blob made from a command's output."""

    blob_uuid: str
    size: int
    sha512: str


def unique(operation_uuid: str, index: int) -> str:
    """The `unique` of an operation's command (reference §5.5). Pure."""
    return f"agentop:{operation_uuid}:{index}"


def stripped(reply: Mapping[str, Any]) -> dict[str, Any]:
    """A reply as stored in `results`: without `command` and `unique`. Pure."""
    return {k: v for k, v in reply.items() if k not in ("command", "unique")}


def too_long(result: Mapping[str, Any]) -> list[str]:
    """The output keys of an execute result that move into blobs. Pure."""
    return [
        name
        for name in ("stdout", "stderr")
        if isinstance(result.get(name), str) and len(result[name]) > OUTPUT_LIMIT
    ]


def commands_of(operation: agent_operation_pb2.AgentOperation) -> list[dict[str, Any]]:
    """An operation's stored commands as plain dicts. Pure."""
    return [json_format.MessageToDict(value.struct_value) for value in operation.commands.values]


def agent_message(command: Mapping[str, Any], operation_uuid: str, index: int) -> dict[str, Any]:
    """The message sent to the agent for a stored command. Pure. Raises
    OperationFailed for a command the host does not know."""
    name = command.get("command")
    tag = unique(operation_uuid, index)
    if name == "execute":
        return {
            "command": "execute",
            "command-line": command.get("commandline", ""),
            "block-for-result": True,
            "unique": tag,
        }
    if name == "get-file":
        return {"command": "get-file", "path": command.get("path", ""), "unique": tag}
    if name == "chmod":
        mode = command.get("mode")
        if isinstance(mode, float) and mode.is_integer():
            mode = int(mode)  # stored in a Struct, as a double
        return {"command": "chmod", "path": command.get("path", ""), "mode": mode, "unique": tag}
    if name == "put-blob":
        return {"command": "put-file", "path": command.get("path", ""), "unique": tag}
    raise OperationFailed(f"unknown agent operation command {name!r}")


def output_record(
    output: Output, *, node: str, namespace: str, now: float
) -> records_pb2.BlobRecord:
    """The record of an output blob: `created`, on `node`, read only by
    `namespace` (and system). Pure."""
    blob = artifact_pb2.Blob(
        uuid=output.blob_uuid,
        state=artifact_pb2.BLOB_STATE_CREATED,
        version=BLOB_VIEW_VERSION,
        size=output.size,
        modified=now,
        fetched_at=now,
        locations=[node],
        sha512=output.sha512,
    )
    blob.metadata.SetInParent()
    return records_pb2.BlobRecord(blob=blob, created_at=now, owner_namespace=namespace)


class AgentOperations:
    """Runs this node's agent operations (a node agent part)."""

    def __init__(
        self,
        *,
        node: str,
        store: Store,
        monitor: Callable[[str], AgentMonitor | None],
        blobs: BlobStore,
        events: EventSink,
        ensure_blob: Callable[[str], Awaitable[Path]],
    ) -> None:
        """`ensure_blob` makes a blob whole on this node (copied from a peer
        when it is not here) and answers its path."""
        self._ensure_blob = ensure_blob
        self._node = node
        self._store = store
        self._monitor = monitor
        self._blobs = blobs
        self._events = events
        self._queues: dict[str, list[str]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def submit(self, instance_uuid: str, operation_uuid: str) -> None:
        """Queue an operation behind the instance's others (once)."""
        queue = self._queues.setdefault(instance_uuid, [])
        if operation_uuid not in queue:
            queue.append(operation_uuid)
        if instance_uuid not in self._workers:
            self._workers[instance_uuid] = asyncio.create_task(
                self._work(instance_uuid), name=f"agentops-{instance_uuid}"
            )

    async def resume(self) -> None:
        """Pick up what a previous run of this node agent left."""
        queued: list[tuple[float, str, str]] = []
        async for item in self._store.list_prefix(kind_prefix(OPERATION)):
            record = records_pb2.AgentOperationRecord.FromString(item.value)
            operation = record.operation
            if record.node != self._node:
                continue
            if operation.state in (PREFLIGHT, QUEUED):
                queued.append((operation.created, operation.instance_uuid, operation.uuid))
            elif operation.state == EXECUTING:
                with contextlib.suppress(Gone, errors.NotFound):
                    await self._end(operation.uuid, "the node agent restarted while it ran")
        for _created, instance_uuid, operation_uuid in sorted(queued):
            self.submit(instance_uuid, operation_uuid)

    async def close(self) -> None:
        """Stop every queue (operations running are left `executing`)."""
        for task in list(self._workers.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _work(self, instance_uuid: str) -> None:
        queue = self._queues[instance_uuid]
        try:
            while queue:
                operation_uuid = queue[0]
                try:
                    await self._run(operation_uuid)
                except Exception:
                    log.exception(
                        "agent operation failed",
                        extra={"fields": {"operation": operation_uuid}},
                    )
                    with contextlib.suppress(Exception):
                        await self._end(
                            operation_uuid,
                            "the node agent failed running it",
                            states=(PREFLIGHT, QUEUED, EXECUTING),
                        )
                queue.pop(0)
        finally:
            self._workers.pop(instance_uuid, None)
            if not queue:
                self._queues.pop(instance_uuid, None)

    async def _run(self, operation_uuid: str) -> None:
        try:
            record = await self._preflight(operation_uuid)
            record = await self._change(operation_uuid, _start)
        except (Gone, errors.NotFound):
            return
        except OperationFailed as exc:
            with contextlib.suppress(Gone, errors.NotFound):
                await self._end(operation_uuid, str(exc), states=(PREFLIGHT,))
            return
        operation = record.operation
        started = time.monotonic()
        try:
            monitor = await self._ready_monitor(operation)
            commands = commands_of(operation)
            for index, command in enumerate(commands):
                result, outputs = await self._command(monitor, operation, index, command)
                last = index == len(commands) - 1  # its result and `complete` in one write
                await self._record_result(operation, index, result, outputs, last)
            if not commands:
                await self._change(operation_uuid, _finish)
            self._emit(operation, "agent operation complete", started)
        except (OperationFailed, AgentError) as exc:
            refused = exc.result if isinstance(exc, OperationFailed) else None
            with contextlib.suppress(Gone, errors.NotFound):
                await self._end(operation_uuid, str(exc), result=refused)
            self._emit(operation, "agent operation failed", started, error=str(exc))
        except (Gone, errors.NotFound):  # deleted, or purged with its instance
            return

    async def _preflight(self, operation_uuid: str) -> records_pb2.AgentOperationRecord:
        """Make a `preflight` operation's blobs whole here (within its
        deadline), then `queued`; a failure is OperationFailed (Shaken
        Fist's preflight raises and blocks the queue, quirk 8)."""
        item = await self._store.get(key(OPERATION, operation_uuid))
        if item is None:
            raise Gone
        record = records_pb2.AgentOperationRecord.FromString(item.value)
        if record.operation.state != PREFLIGHT:
            return record
        for command in commands_of(record.operation):
            if command.get("command") != "put-blob":
                continue
            blob_uuid = str(command.get("blob_uuid", ""))
            try:
                async with asyncio.timeout(record.operation.deadline_seconds):
                    await self._ensure_blob(blob_uuid)
            except TimeoutError:
                raise OperationFailed(f"blob {blob_uuid} was not made local in time") from None
            except Exception as exc:  # CopyFailed, OSError: the blob cannot be had here
                raise OperationFailed(f"blob {blob_uuid} cannot be had here: {exc}") from None
        return await self._change(operation_uuid, _queue)

    async def _ready_monitor(self, operation: agent_operation_pb2.AgentOperation) -> AgentMonitor:
        monitor = self._monitor(operation.instance_uuid)
        if monitor is None:
            raise OperationFailed("instance agent not running (the instance is not running)")
        if not monitor.ready:
            try:
                async with asyncio.timeout(operation.deadline_seconds):
                    await monitor.wait_ready()
            except TimeoutError:
                raise OperationFailed(f"instance agent not ready ({monitor.state})") from None
        return monitor

    async def _command(
        self,
        monitor: AgentMonitor,
        operation: agent_operation_pb2.AgentOperation,
        index: int,
        command: dict[str, Any],
    ) -> tuple[dict[str, Any], list[Output]]:
        message = agent_message(command, operation.uuid, index)
        within = operation.deadline_seconds
        if message["command"] == "put-file":
            blob_uuid = str(command.get("blob_uuid", ""))
            return await self._put_file(monitor, message, blob_uuid, within), []
        if message["command"] == "chmod":
            return stripped(await monitor.call(message, within=within)), []
        if message["command"] == "execute":
            reply = await monitor.call(message, within=within)
            result = stripped(reply)
            outputs = []
            for name in too_long(result):
                made = await asyncio.to_thread(self._keep, [result.pop(name).encode()])
                result[f"{name}_blob"] = made.blob_uuid
                outputs.append(made)
            return result, outputs
        return await self._get_file(monitor, operation, message, within)

    async def _put_file(
        self, monitor: AgentMonitor, message: dict[str, Any], blob_uuid: str, within: float
    ) -> dict[str, Any]:
        """Stream a blob as `put-file` frames and wait for the one ack, to
        the terminator (Shaken Fist waits ~1 s for an ack after every 1 KiB
        chunk, quirk 7)."""
        path = self._blobs.path(blob_uuid)
        try:
            source = await asyncio.to_thread(path.open, "rb")
        except OSError as exc:
            raise OperationFailed(f"blob {blob_uuid} is not here: {exc}") from None
        try:
            stat = os.fstat(source.fileno())
            header = {
                **message,
                "stat_result": {
                    "mode": stat.st_mode,
                    "size": stat.st_size,
                    "uid": stat.st_uid,
                    "gid": stat.st_gid,
                    "atime": stat.st_atime,
                    "mtime": stat.st_mtime,
                    "ctime": stat.st_ctime,
                },
            }
            async with monitor.exchange(header, within=within) as replies:
                offset = 0
                while block := await asyncio.to_thread(source.read, PUT_READ):
                    for start in range(0, len(block), PUT_CHUNK):
                        chunk = block[start : start + PUT_CHUNK]
                        await replies.send(
                            {
                                **message,
                                "offset": offset,
                                "encoding": "base64",
                                "chunk": base64.b64encode(chunk).decode(),
                            }
                        )
                        offset += len(chunk)
                await replies.send({**message, "chunk": None})
                return stripped(await replies.next())
        finally:
            await asyncio.to_thread(source.close)

    async def _get_file(
        self,
        monitor: AgentMonitor,
        operation: agent_operation_pb2.AgentOperation,
        message: dict[str, Any],
        within: float,
    ) -> tuple[dict[str, Any], list[Output]]:
        """Fetch a file into a new blob, again (up to GET_ATTEMPTS in all,
        within the deadline) when a chunk went missing: agent 0.3.18 drops
        a frame it cannot write at once to a full port, which each chunk's
        `offset` shows."""
        deadline = asyncio.get_running_loop().time() + within
        for attempt in range(1, GET_ATTEMPTS + 1):
            left = deadline - asyncio.get_running_loop().time()
            try:
                header, made = await self._get_once(monitor, message, max(left, 0.0))
            except ChunkLost as exc:
                log.warning(
                    "a chunk of a get went missing",
                    extra={"fields": {"operation": operation.uuid, "attempt": attempt}},
                )
                self._events.emit(
                    "instance",
                    operation.instance_uuid,
                    event_pb2.EVENT_TYPE_STATUS,
                    "agent get chunk lost",
                    extra={"operation": operation.uuid, "attempt": attempt, "reason": str(exc)},
                )
                if attempt == GET_ATTEMPTS:
                    raise OperationFailed(f"{exc} ({attempt} attempts)") from None
                continue
            result = stripped(header)
            result["content_blob"] = made.blob_uuid
            return result, [made]
        raise AssertionError("unreachable")

    async def _get_once(
        self, monitor: AgentMonitor, message: dict[str, Any], within: float
    ) -> tuple[dict[str, Any], Output]:
        blob_uuid = str(uuid_module.uuid4())
        lost: str | None = None
        # Written as the chunks come (small writes to the page cache), so a
        # large file is never held in memory.
        with self._blobs.writer(blob_uuid) as writer:
            size = 0
            async with monitor.exchange(message, within=within) as replies:
                header = await replies.next(idle=GET_IDLE)
                if not header.get("result"):
                    said = str(header.get("message", "the agent refused the get"))
                    raise OperationFailed(said, stripped(header))
                while True:  # to the terminator, even past a lost chunk
                    reply = await replies.next(idle=GET_IDLE)
                    chunk = reply.get("chunk")
                    if chunk is None:
                        break
                    if lost:
                        continue
                    if reply.get("offset") != size:
                        lost = f"a chunk went missing at offset {size}"
                        continue
                    try:
                        data = base64.b64decode(chunk)
                    except (binascii.Error, TypeError) as exc:
                        raise OperationFailed(f"the agent sent a bad chunk: {exc}") from None
                    writer.write(data)
                    size += len(data)
            if lost:
                raise ChunkLost(lost)
            made = Output(blob_uuid, size, writer.sha512())
            writer.commit()
        return header, made

    def _keep(self, chunks: list[bytes]) -> Output:
        """Write bytes as a new blob here (blocking)."""
        blob_uuid = str(uuid_module.uuid4())
        with self._blobs.writer(blob_uuid) as writer:
            for chunk in chunks:
                writer.write(chunk)
            digest = writer.sha512()
            writer.commit()
        return Output(blob_uuid, sum(len(c) for c in chunks), digest)

    async def _record_result(
        self,
        operation: agent_operation_pb2.AgentOperation,
        index: int,
        result: Mapping[str, Any],
        outputs: list[Output],
        last: bool,
    ) -> None:
        """Record command `index`'s result and the records of its output
        blobs in one transaction, while the operation is `executing`. When
        it is not (deleted, its record gone), or the blobs' records cannot
        be written, nothing is, and the output files go at once (Gone,
        OperationFailed). A write whose outcome is unknown (etcd away)
        leaves them: a file with no record goes after the node's grace."""
        now = time.time()
        blobs = [
            output_record(made, node=self._node, namespace=operation.namespace, now=now)
            for made in outputs
        ]
        setter = _result_setter(index, result, [made.blob_uuid for made in outputs], last)
        attempts = iter(range(RESULT_ATTEMPTS))

        def change(record: records_pb2.AgentOperationRecord) -> None:
            if next(attempts, None) is None:
                raise OperationFailed("its output could not be recorded: blob uuids taken")
            setter(record)

        try:
            await self._change(
                operation.uuid,
                change,
                also=lambda: [
                    Put(key("blob", blob.blob.uuid), blob.SerializeToString(), 0) for blob in blobs
                ],
            )
        except (Gone, errors.NotFound, OperationFailed) as exc:
            for made in outputs:
                await asyncio.to_thread(self._blobs.remove, made.blob_uuid)
            if isinstance(exc, OperationFailed):
                raise
            raise Gone from None

    async def _end(
        self,
        operation_uuid: str,
        message: str,
        *,
        result: Mapping[str, Any] | None = None,
        states: tuple[State, ...] = (EXECUTING,),
    ) -> None:
        def fail(record: records_pb2.AgentOperationRecord) -> None:
            operation = record.operation
            if operation.state not in states:
                raise Gone
            if result is not None:
                operation.results.get_or_create_struct(str(len(operation.results))).update(result)
            operation.state = ERROR
            operation.error = message

        await self._change(operation_uuid, fail)

    async def _change(
        self,
        operation_uuid: str,
        change: Callable[[records_pb2.AgentOperationRecord], None],
        *,
        also: Callable[[], Sequence[Operation]] | None = None,
    ) -> records_pb2.AgentOperationRecord:
        """Apply `change` with compare-and-swap, with the writes `also`
        gives in the same transaction."""
        at = key(OPERATION, operation_uuid)
        item = await self._store.get(at)
        if item is None:
            raise errors.NotFound(f"agent operation {operation_uuid} not found")
        current = records_pb2.AgentOperationRecord.FromString(item.value)
        return await self._store.update(
            at,
            current,
            item.mod_revision,
            change,
            lambda: errors.NotFound(f"agent operation {operation_uuid} not found"),
            also=also,
        )

    def _emit(
        self,
        operation: agent_operation_pb2.AgentOperation,
        message: str,
        started: float,
        **extra: Any,
    ) -> None:
        self._events.emit(
            "instance",
            operation.instance_uuid,
            event_pb2.EVENT_TYPE_STATUS,
            message,
            extra={"operation": operation.uuid, **extra},
            duration=time.monotonic() - started,
        )


def _queue(record: records_pb2.AgentOperationRecord) -> None:
    if record.operation.state != PREFLIGHT:
        raise Gone
    record.operation.state = QUEUED


def _start(record: records_pb2.AgentOperationRecord) -> None:
    if record.operation.state != QUEUED:
        raise Gone
    record.operation.state = EXECUTING


def _finish(record: records_pb2.AgentOperationRecord) -> None:
    if record.operation.state != EXECUTING:
        raise Gone
    record.operation.state = COMPLETE


def _result_setter(
    index: int, result: Mapping[str, Any], outputs: Sequence[str], last: bool
) -> Callable[[records_pb2.AgentOperationRecord], None]:
    def change(record: records_pb2.AgentOperationRecord) -> None:
        if record.operation.state != EXECUTING:
            raise Gone
        record.operation.results.get_or_create_struct(str(index)).update(dict(result))
        record.output_blobs.extend(outputs)
        if last:
            record.operation.state = COMPLETE

    return change
