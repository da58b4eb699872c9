"""services/node_agent/agent_operations.py against a real etcd and a scripted
agent on a real UNIX socket, through a real agent monitor: operations run in
order, results as the client reads them, output into blobs, and every way a
command can fail ends the operation `error` with its reason within its
deadline (reference §5.5, quirks 8, 9, 13); an instance deleted mid-run
ends its operation at once, and an operation deleted or purged mid-run
leaves no output blob behind."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import shutil
import tempfile
import time
import uuid as uuid_module
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from sfmesh.v1 import agent_operation_pb2, artifact_pb2, instance_pb2, records_pb2

from services.api.instances import agent_rules
from services.common.store import Delete, Put, Store, key, kind_prefix
from services.node_agent.agent_monitor import AgentMonitor, Timings
from services.node_agent.agent_operations import AgentOperations
from services.node_agent.blob_store import LocalBlobStore
from tests.event_sinks import RecordedEvents
from tests.integration.node_agent.fake_agent import FakeAgent, start_agent

NODE = "agent-operations-test"
FAST = Timings(connect_retry=0.05, tick=0.05, ask_while_not_ready=0.3)
State = agent_operation_pb2.AgentOperationState
Answer = Callable[[FakeAgent, dict[str, Any]], Awaitable[None]]


@dataclass
class Rig:
    store: Store
    operations: AgentOperations
    agent: FakeAgent
    monitor: AgentMonitor
    blobs: LocalBlobStore
    instance: instance_pb2.Instance
    watching: asyncio.Task[None]
    """The monitor's `run`: cancelled, as when its instance is deleted."""

    async def submit(
        self, command: dict[str, Any] | list[dict[str, Any]], *, deadline: int = 5
    ) -> str:
        uuid = str(uuid_module.uuid4())
        commands = command if isinstance(command, list) else [command]
        record = agent_rules.new_record(
            uuid=uuid,
            instance=self.instance,
            commands=commands,
            preflight=commands[0]["command"] == "put-blob",
            deadline_seconds=deadline,
            now=time.time(),
            created_ns=time.time_ns(),
            request_id="test",
        )
        assert await self.store.commit(
            [Put(key(agent_rules.OPERATION, uuid), record.SerializeToString(), 0)]
        )
        self.operations.submit(self.instance.uuid, uuid)
        return uuid

    async def read(self, uuid: str) -> records_pb2.AgentOperationRecord:
        item = await self.store.get(key(agent_rules.OPERATION, uuid))
        assert item is not None
        return records_pb2.AgentOperationRecord.FromString(item.value)

    async def settled(self, uuid: str, within: float = 5.0) -> records_pb2.AgentOperationRecord:
        async with asyncio.timeout(within):
            while True:
                record = await self.read(uuid)
                if state(record) in ("complete", "error"):
                    return record
                await asyncio.sleep(0.02)

    async def blob(self, uuid: str) -> tuple[records_pb2.BlobRecord, bytes]:
        item = await self.store.get(key("blob", uuid))
        assert item is not None
        return records_pb2.BlobRecord.FromString(item.value), self.blobs.path(uuid).read_bytes()


def results(record: records_pb2.AgentOperationRecord) -> dict[str, Any]:
    return json_format.MessageToDict(record.operation.results)


def state(record: records_pb2.AgentOperationRecord) -> str:
    return State.Name(record.operation.state).removeprefix("AGENT_OPERATION_STATE_").lower()


async def local(blobs: LocalBlobStore, uuid: str) -> Path:
    """The test's `ensure_blob`: a blob is here or it is not."""
    path = blobs.path(uuid)
    if not path.exists():
        raise FileNotFoundError(f"blob {uuid} is not here")
    return path


@pytest.fixture
async def rig(etcd: str) -> AsyncIterator[Rig]:
    folder = Path(tempfile.mkdtemp(prefix="sfo-"))
    store = Store(etcd)
    agent = FakeAgent(folder / "sc-sf-agent")
    await agent.start()
    monitor = AgentMonitor("i", agent.path, lambda report: None, timings=FAST)
    watching = asyncio.create_task(monitor.run())
    blobs = LocalBlobStore(folder / "blobs")
    operations = AgentOperations(
        node=NODE,
        store=store,
        monitor=lambda uuid: monitor,
        blobs=blobs,
        events=RecordedEvents(),
        ensure_blob=lambda uuid: local(blobs, uuid),
    )
    instance = instance_pb2.Instance(
        uuid=str(uuid_module.uuid4()), namespace="agentops-test", node=NODE
    )
    try:
        await start_agent(agent)
        await agent.answer_system()
        async with asyncio.timeout(3):
            await monitor.wait_ready()
        yield Rig(store, operations, agent, monitor, blobs, instance, watching)
    finally:
        await operations.close()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await agent.stop()
        await store.close()
        shutil.rmtree(folder, ignore_errors=True)


async def reply(agent: FakeAgent, command: str, **fields: Any) -> dict[str, Any]:
    """Answer the host's next `command` with `<command>-response` + fields."""
    asked = await agent.expect(command)
    await agent.send({"command": f"{command}-response", "unique": asked["unique"], **fields})
    return asked


async def test_an_execute_completes_with_the_results_the_client_reads(rig: Rig) -> None:
    uuid = await rig.submit(agent_rules.execute_command("uname -r"))
    asked = await reply(
        rig.agent,
        "execute",
        **{"command-line": "uname -r", "result": True, "return-code": 0},
        stdout="6.1.0-99-amd64\n",
        stderr="",
    )
    assert asked["command-line"] == "uname -r"
    assert asked["unique"] == f"agentop:{uuid}:0"
    assert asked["block-for-result"] is True
    record = await rig.settled(uuid)
    assert state(record) == "complete"
    assert results(record) == {
        "0": {
            "command-line": "uname -r",
            "result": True,
            "return-code": 0,
            "stdout": "6.1.0-99-amd64\n",
            "stderr": "",
        }
    }
    assert not record.operation.HasField("error")


async def test_a_failing_command_is_complete_not_error(rig: Rig) -> None:
    uuid = await rig.submit(agent_rules.execute_command("false"))
    await reply(rig.agent, "execute", result=False, stdout="", stderr="", **{"return-code": 1})
    record = await rig.settled(uuid)
    assert state(record) == "complete"
    assert results(record)["0"]["return-code"] == 1


async def test_long_output_moves_into_a_blob(rig: Rig) -> None:
    uuid = await rig.submit(agent_rules.execute_command("yes | head"))
    long = "y\n" * 6000
    await reply(rig.agent, "execute", result=True, stdout=long, stderr="e", **{"return-code": 0})
    record = await rig.settled(uuid)
    result = results(record)["0"]
    assert "stdout" not in result and result["stderr"] == "e"
    blob, data = await rig.blob(result["stdout_blob"])
    assert data == long.encode()
    assert blob.blob.state == artifact_pb2.BLOB_STATE_CREATED
    assert blob.owner_namespace == "agentops-test"
    assert list(record.output_blobs) == [result["stdout_blob"]]


async def test_a_get_makes_a_blob_of_the_file(rig: Rig) -> None:
    content = bytes(range(256)) * 20  # five chunks of 1024, and a bit
    uuid = await rig.submit(agent_rules.get_command("/etc/thing"))
    asked = await rig.agent.expect("get-file")
    assert asked["path"] == "/etc/thing"
    stat = {"mode": 33188, "size": len(content), "uid": 0, "gid": 0}
    head = {"command": "get-file-response", "unique": asked["unique"], "path": "/etc/thing"}
    await rig.agent.send({**head, "result": True, "stat_result": stat})
    for offset in range(0, len(content), 1024):
        chunk = base64.b64encode(content[offset : offset + 1024]).decode()
        await rig.agent.send(
            {**head, "result": True, "offset": offset, "encoding": "base64", "chunk": chunk}
        )
    await rig.agent.send({**head, "result": True, "chunk": None})
    record = await rig.settled(uuid)
    assert state(record) == "complete"
    result = results(record)["0"]
    assert result["result"] is True and result["stat_result"]["mode"] == 33188
    blob, data = await rig.blob(result["content_blob"])
    assert data == content
    assert blob.blob.size == len(content)


async def send_file(agent: FakeAgent, content: bytes, *, skip: int | None = None) -> None:
    """Answer the host's next get-file with `content`, dropping chunk `skip`."""
    asked = await agent.expect("get-file")
    head = {"command": "get-file-response", "unique": asked["unique"], "path": asked["path"]}
    await agent.send({**head, "result": True, "stat_result": {"size": len(content)}})
    for number, offset in enumerate(range(0, len(content), 1024)):
        if number == skip:
            continue
        chunk = base64.b64encode(content[offset : offset + 1024]).decode()
        await agent.send({**head, "result": True, "offset": offset, "chunk": chunk})
    await agent.send({**head, "result": True, "chunk": None})


async def test_a_lost_chunk_fetches_the_file_again(rig: Rig) -> None:
    content = bytes(range(256)) * 16
    uuid = await rig.submit(agent_rules.get_command("/f"))
    await send_file(rig.agent, content, skip=2)
    await send_file(rig.agent, content)
    record = await rig.settled(uuid)
    assert state(record) == "complete"
    _blob, data = await rig.blob(results(record)["0"]["content_blob"])
    assert data == content
    assert list(record.output_blobs) == [results(record)["0"]["content_blob"]]


async def test_chunks_lost_every_time_err(rig: Rig) -> None:
    uuid = await rig.submit(agent_rules.get_command("/f"))
    for _ in range(3):
        await send_file(rig.agent, b"x" * 4096, skip=1)
    record = await rig.settled(uuid)
    assert state(record) == "error"
    assert record.operation.error == "a chunk went missing at offset 1024 (3 attempts)"
    assert not record.output_blobs
    assert not list((rig.blobs.root).rglob("*-*"))  # no blob file left behind


async def test_an_empty_file_makes_an_empty_blob(rig: Rig) -> None:
    uuid = await rig.submit(agent_rules.get_command("/empty"))
    asked = await rig.agent.expect("get-file")
    head = {"command": "get-file-response", "unique": asked["unique"], "path": "/empty"}
    await rig.agent.send({**head, "result": True, "stat_result": {"size": 0}})
    await rig.agent.send({**head, "result": True, "chunk": None})
    record = await rig.settled(uuid)
    assert state(record) == "complete"
    _blob, data = await rig.blob(results(record)["0"]["content_blob"])
    assert data == b""


async def test_a_missing_file_is_an_error_with_its_reason(rig: Rig) -> None:
    uuid = await rig.submit(agent_rules.get_command("/nope"))
    await reply(rig.agent, "get-file", result=False, path="/nope", message="path does not exist")
    record = await rig.settled(uuid)
    assert state(record) == "error"
    assert record.operation.error == "path does not exist"
    assert results(record)["0"] == {
        "result": False,
        "path": "/nope",
        "message": "path does not exist",
    }


async def test_a_silent_agent_errs_at_the_deadline_and_the_queue_moves_on(rig: Rig) -> None:
    started = time.monotonic()
    stuck = await rig.submit(agent_rules.execute_command("sleep 1000"), deadline=1)
    after = await rig.submit(agent_rules.execute_command("true"))
    await rig.agent.expect("execute")  # never answered
    record = await rig.settled(stuck)
    assert state(record) == "error"
    assert "in time" in record.operation.error
    assert 0.9 <= time.monotonic() - started < 3
    asked = await reply(
        rig.agent, "execute", result=True, stdout="", stderr="", **{"return-code": 0}
    )
    assert asked["unique"] == f"agentop:{after}:0"
    assert state(await rig.settled(after)) == "complete"


async def test_operations_run_one_at_a_time_in_order(rig: Rig) -> None:
    first = await rig.submit(agent_rules.execute_command("one"))
    second = await rig.submit(agent_rules.execute_command("two"))
    asked = await rig.agent.expect("execute")
    assert asked["command-line"] == "one"
    with pytest.raises(TimeoutError):
        await rig.agent.expect("execute", within=0.3)
    done = {"result": True, "return-code": 0, "stdout": "1", "stderr": ""}
    await rig.agent.send({"command": "execute-response", "unique": asked["unique"], **done})
    asked = await reply(rig.agent, "execute", result=True, stdout="2", stderr="",
                        **{"return-code": 0})  # fmt: skip
    assert asked["command-line"] == "two"
    assert results(await rig.settled(first))["0"]["stdout"] == "1"
    assert results(await rig.settled(second))["0"]["stdout"] == "2"


async def test_an_agent_that_goes_away_fails_the_operation_at_once(rig: Rig) -> None:
    uuid = await rig.submit(agent_rules.execute_command("sleep 1000"), deadline=60)
    await rig.agent.expect("execute")
    started = time.monotonic()
    rig.agent.hang_up()
    record = await rig.settled(uuid)
    assert state(record) == "error"
    assert "ended" in record.operation.error
    assert time.monotonic() - started < 2


async def test_no_monitor_is_an_error_at_once(rig: Rig, etcd: str) -> None:
    operations = AgentOperations(
        node=NODE, store=rig.store, monitor=lambda uuid: None, blobs=rig.blobs,
        events=RecordedEvents(), ensure_blob=lambda uuid: local(rig.blobs, uuid),
    )  # fmt: skip
    rig.operations = operations
    uuid = await rig.submit(agent_rules.execute_command("true"))
    record = await rig.settled(uuid)
    assert state(record) == "error"
    assert record.operation.error.startswith("instance agent not running")
    await operations.close()


async def test_a_deleted_operation_is_not_run(rig: Rig) -> None:
    uuid = str(uuid_module.uuid4())
    record = agent_rules.new_record(
        uuid=uuid, instance=rig.instance, commands=[agent_rules.execute_command("true")],
        deadline_seconds=5, now=time.time(), created_ns=time.time_ns(), request_id="t",
    )  # fmt: skip
    agent_rules.mark_deleted(record, time.time())
    await rig.store.commit([Put(key(agent_rules.OPERATION, uuid), record.SerializeToString(), 0)])
    rig.operations.submit(rig.instance.uuid, uuid)
    with pytest.raises(TimeoutError):
        await rig.agent.expect("execute", within=0.5)
    assert state(await rig.read(uuid)) == "deleted"


async def test_resume_errs_what_was_executing_and_queues_what_was_queued(rig: Rig) -> None:
    executing, queued = str(uuid_module.uuid4()), str(uuid_module.uuid4())
    for uuid, when in ((executing, 1), (queued, 2)):
        record = agent_rules.new_record(
            uuid=uuid, instance=rig.instance, commands=[agent_rules.execute_command("x")],
            deadline_seconds=5, now=time.time() + when, created_ns=time.time_ns(), request_id="t",
        )  # fmt: skip
        if uuid == executing:
            record.operation.state = agent_operation_pb2.AGENT_OPERATION_STATE_EXECUTING
        await rig.store.commit(
            [Put(key(agent_rules.OPERATION, uuid), record.SerializeToString(), 0)]
        )
    await rig.operations.resume()
    await reply(rig.agent, "execute", result=True, stdout="", stderr="", **{"return-code": 0})
    assert state(await rig.settled(queued)) == "complete"
    gone = await rig.read(executing)
    assert state(gone) == "error"
    assert "restarted" in gone.operation.error


def keep_blob(blobs: LocalBlobStore, content: bytes) -> str:
    uuid = str(uuid_module.uuid4())
    with blobs.writer(uuid) as writer:
        writer.write(content)
        writer.commit()
    return uuid


async def test_a_put_streams_the_blob_then_one_ack_then_chmod(rig: Rig) -> None:
    content = bytes(range(256)) * 100  # seven chunks of 4 KiB
    blob = keep_blob(rig.blobs, content)
    uuid = await rig.submit(agent_rules.put_commands(blob, "/tmp/x", 33188))
    header = await rig.agent.expect("put-file")
    assert header["unique"] == f"agentop:{uuid}:0" and header["path"] == "/tmp/x"
    assert header["stat_result"]["size"] == len(content) and "chunk" not in header
    received = b""
    while True:  # every chunk arrives before any ack is sent
        frame = await rig.agent.expect("put-file")
        if frame["chunk"] is None:
            break
        assert frame["offset"] == len(received)
        received += base64.b64decode(frame["chunk"])
    assert received == content
    await rig.agent.send(
        {"command": "put-file-response", "path": "/tmp/x", "unique": header["unique"]}
    )
    chmod = await reply(rig.agent, "chmod", path="/tmp/x")
    assert chmod["mode"] == 33188 and chmod["unique"] == f"agentop:{uuid}:1"
    record = await rig.settled(uuid)
    assert state(record) == "complete"
    assert results(record) == {"0": {"path": "/tmp/x"}, "1": {"path": "/tmp/x"}}


async def test_a_put_of_a_blob_not_to_be_had_errs_in_preflight(rig: Rig) -> None:
    missing = str(uuid_module.uuid4())
    uuid = await rig.submit(agent_rules.put_commands(missing, "/tmp/x", "ugo+rx"))
    after = await rig.submit(agent_rules.execute_command("true"))
    await reply(rig.agent, "execute", result=True, stdout="", stderr="", **{"return-code": 0})
    record = await rig.settled(uuid)
    assert state(record) == "error"
    assert record.operation.error.startswith(f"blob {missing} cannot be had here")
    assert state(await rig.settled(after)) == "complete"


async def blob_keys(store: Store) -> set[bytes]:
    return {item.key async for item in store.list_prefix(kind_prefix("blob"))}


@pytest.mark.parametrize("how", ["deleted", "purged"])
async def test_output_of_an_operation_gone_while_it_ran_is_not_kept(rig: Rig, how: str) -> None:
    before = await blob_keys(rig.store)
    uuid = await rig.submit(agent_rules.execute_command("yes | head"), deadline=10)
    asked = await rig.agent.expect("execute")
    at = key(agent_rules.OPERATION, uuid)
    if how == "deleted":  # the api's DELETE
        record = await rig.read(uuid)
        agent_rules.mark_deleted(record, time.time())
        assert await rig.store.commit([Put(at, record.SerializeToString())])
    else:  # the api's purge: its instance is gone
        assert await rig.store.commit([Delete(at)])
    long = {"stdout": "y\n" * 6000, "stderr": "e" * 20000, "return-code": 0, "result": True}
    await rig.agent.send({"command": "execute-response", "unique": asked["unique"], **long})
    after = await rig.submit(agent_rules.execute_command("true"))  # queued behind it
    await reply(rig.agent, "execute", result=True, stdout="", stderr="", **{"return-code": 0})
    assert state(await rig.settled(after)) == "complete"
    assert await blob_keys(rig.store) == before
    assert not list(rig.blobs.root.rglob("*-*"))  # no file left behind
    if how == "deleted":
        kept = await rig.read(uuid)
        assert state(kept) == "deleted" and not kept.output_blobs
    else:
        assert await rig.store.get(at) is None


async def test_an_instance_deleted_during_a_get_ends_it_at_once_without_a_blob(rig: Rig) -> None:
    before = await blob_keys(rig.store)
    uuid = await rig.submit(agent_rules.get_command("/big"), deadline=60)
    asked = await rig.agent.expect("get-file")
    head = {"command": "get-file-response", "unique": asked["unique"], "path": "/big"}
    await rig.agent.send({**head, "result": True, "stat_result": {"size": 1 << 20}})
    chunk = base64.b64encode(b"x" * 1024).decode()
    await rig.agent.send({**head, "result": True, "offset": 0, "chunk": chunk})
    await asyncio.sleep(0.2)
    started = time.monotonic()
    rig.watching.cancel()  # the instance deleted: the node agent stops its monitor
    record = await rig.settled(uuid)
    assert state(record) == "error" and "ended" in record.operation.error
    assert time.monotonic() - started < 2
    assert not record.output_blobs and await blob_keys(rig.store) == before
    assert not list(rig.blobs.root.rglob("*-*"))  # the partial file went too


async def test_an_instance_deleted_while_its_agent_is_awaited_ends_it_at_once(rig: Rig) -> None:
    lonely = AgentMonitor("j", rig.agent.path.with_name("nobody"), lambda _: None, timings=FAST)
    watching = asyncio.create_task(lonely.run())
    operations = AgentOperations(
        node=NODE, store=rig.store, monitor=lambda uuid: lonely, blobs=rig.blobs,
        events=RecordedEvents(), ensure_blob=lambda uuid: local(rig.blobs, uuid),
    )  # fmt: skip
    rig.operations = operations
    uuid = await rig.submit(agent_rules.execute_command("true"), deadline=60)
    await asyncio.sleep(0.3)  # waiting for an agent that is not ready
    assert state(await rig.read(uuid)) == "executing"
    started = time.monotonic()
    watching.cancel()
    record = await rig.settled(uuid)
    assert state(record) == "error" and "monitor stopped" in record.operation.error
    assert time.monotonic() - started < 2
    await operations.close()
