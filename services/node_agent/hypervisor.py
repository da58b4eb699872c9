"""The node agent's only door to libvirt. libvirt-python blocks, so every call
runs on one worker thread; lifecycle events arrive on libvirt's event thread
and are handed to the asyncio loop. A connection lost with libvirtd (a
restart, say) is reopened on the next call, and the event callback with it.

Domains are persistent, named by `naming.py` (`sfmesh-<node>-<uuid>`), so
several node agents on one libvirtd never touch each other's domains, and
nothing else is ever touched."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import libvirt
from sfmesh.v1 import instance_pb2, node_agent_service_pb2

from services.node_agent import disk_copy, naming, nic_devices
from services.node_agent.domain_xml import with_graphics_port

log = logging.getLogger("sfmesh.node_agent")

T = TypeVar("T")
Power = instance_pb2.PowerState
Operation = node_agent_service_pb2.PowerOperation

WORKERS = 8
"""libvirt calls in flight at once: a slow one (destroying a domain takes
seconds) must not hold up the others; the connection is thread-safe."""
BACKUP_POLL = 0.2
"""Seconds between two looks at a running backup job."""
RECONNECT_START = 0.2
RECONNECT_MAX = 5.0

_EVENT_THREAD_LOCK = threading.Lock()
_event_thread: threading.Thread | None = None


_USAGE_STATS = (
    libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
    | libvirt.VIR_DOMAIN_STATS_BLOCK
    | libvirt.VIR_DOMAIN_STATS_INTERFACE
)
"""The stat groups `usage_stats` asks for (`usage.py` reads them)."""

_GONE_OR_STOPPED = (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID)
"""libvirt's answers to destroying a domain that is gone or not running."""


class HypervisorError(Exception):
    """libvirt refused an operation; the message is libvirt's."""


def power_state(libvirt_state: int) -> instance_pb2.PowerState:
    """libvirt's domain state as a power state (reference §3.3). Pure."""
    if libvirt_state == libvirt.VIR_DOMAIN_SHUTOFF:
        return Power.POWER_STATE_OFF
    if libvirt_state == libvirt.VIR_DOMAIN_CRASHED:
        return Power.POWER_STATE_CRASHED
    if libvirt_state in (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PMSUSPENDED):
        return Power.POWER_STATE_PAUSED
    return Power.POWER_STATE_ON


def event_power(event: int, detail: int) -> instance_pb2.PowerState | None:
    """The power state a lifecycle event leaves a domain in; None for events
    that change none (defined, undefined, shutting down). Pure."""
    if event in (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_RESUMED):
        return Power.POWER_STATE_ON
    if event in (libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED):
        return Power.POWER_STATE_PAUSED
    if event == libvirt.VIR_DOMAIN_EVENT_CRASHED or (
        event == libvirt.VIR_DOMAIN_EVENT_STOPPED
        and detail == libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED
    ):
        return Power.POWER_STATE_CRASHED
    if event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
        return Power.POWER_STATE_OFF
    return None


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


def _ensure_event_thread() -> None:
    """libvirt delivers events only to a process that runs its event loop;
    one thread per process, started before the first connection. libvirt's
    own printing of errors is silenced: they reach callers as exceptions."""
    global _event_thread
    with _EVENT_THREAD_LOCK:
        if _event_thread is None:
            libvirt.registerErrorHandler(lambda _context, _error: None, None)
            libvirt.virEventRegisterDefaultImpl()
            _event_thread = threading.Thread(
                target=_run_event_loop, name="libvirt-events", daemon=True
            )
            _event_thread.start()


class Hypervisor:
    """This node's domains in libvirt."""

    def __init__(
        self,
        uri: str,
        node: str,
        observed: Callable[[str, instance_pb2.PowerState], None],
        reconnected: Callable[[], None],
    ) -> None:
        self._uri = uri
        self._node = node
        self._observed = observed
        self._reconnected = reconnected
        self._reconnecting: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: libvirt.virConnect | None = None
        self._connecting = threading.Lock()
        self._workers = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="libvirt")

    def domain_name(self, uuid: str) -> str:
        """The libvirt name of an instance's domain."""
        return naming.domain_name(self._node, uuid)

    async def version(self) -> str:
        """libvirtd's version, e.g. "9.0.0"."""
        number = await self._call(lambda conn: conn.getLibVersion())
        return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"

    async def define(self, xml: str) -> None:
        """Define (or redefine) a domain from its XML."""
        await self._call(lambda conn: conn.defineXML(xml))

    async def move_graphics(self, uuid: str, port: int) -> None:
        """Redefine a stopped domain with its graphics device on `port`."""

        def move(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, uuid)
            flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
            conn.defineXML(with_graphics_port(domain.XMLDesc(flags), port))

        await self._call(move)

    async def boot(self, uuid: str) -> None:
        """Start a defined domain unless it runs."""

        def boot(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, uuid)
            if not domain.isActive():
                domain.create()

        await self._call(boot)

    async def screenshot(self, uuid: str) -> bytes | None:
        """The image of screen 0 of a running (or paused) domain, in the
        format libvirt has QEMU make (PNG here, PPM on older stacks); None
        when it is not running."""

        def shoot(conn: libvirt.virConnect) -> bytes | None:
            domain = self._domain(conn, uuid)
            if not domain.isActive():
                return None
            stream = conn.newStream(0)
            chunks: list[bytes] = []
            try:
                domain.screenshot(stream, 0, 0)  # the MIME type it answers is not needed
                stream.recvAll(lambda _stream, data, _opaque: chunks.append(data), None)
                stream.finish()
            except libvirt.libvirtError:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.abort()
                raise
            return b"".join(chunks)

        return await self._call(shoot)

    async def state(self, uuid: str) -> instance_pb2.PowerState | None:
        """The domain's power state; None when it is not defined."""

        def read(conn: libvirt.virConnect) -> instance_pb2.PowerState | None:
            domain = self._lookup(conn, uuid)
            return None if domain is None else power_state(domain.state()[0])

        return await self._call(read)

    async def change(self, uuid: str, operation: node_agent_service_pb2.PowerOperation) -> None:
        """Apply a power operation; HypervisorError when libvirt refuses."""

        def apply(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, uuid)
            _OPERATIONS[operation](domain)

        await self._call(apply)

    async def backup_disk(self, uuid: str, device: str, target: Path) -> bool:
        """Copy disk `device` of a running or paused domain, as it is now,
        into a new qcow2 file `target` (``disk_copy.py``), waiting for the
        job; False when the domain is not running (nothing is copied).
        Raises HypervisorError, or CopyFailed when the job fails."""

        def begin(conn: libvirt.virConnect) -> bool:
            domain = self._domain(conn, uuid)
            if not domain.isActive():
                return False
            _end_stale_copy(domain, device)
            domain.backupBegin(disk_copy.backup_xml(device, target), None, 0)
            return True

        def outcome(conn: libvirt.virConnect) -> bool | None:
            domain = self._domain(conn, uuid, gone="went away")
            active = domain.jobStats()
            if active.get("type", disk_copy.JOB_NONE) != disk_copy.JOB_NONE:
                return None
            completed = domain.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
            return disk_copy.backup_outcome(active, completed)

        def abort(conn: libvirt.virConnect) -> None:
            domain = self._lookup(conn, uuid)
            if domain is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    domain.abortJob()

        if not await self._call(begin):
            return False
        await self._job(outcome, abort)
        return True

    async def copy_disk_top(self, uuid: str, device: str, target: Path) -> bool:
        """Copy only the top layer of disk `device` of a running or paused
        domain, as it is when the copy is in sync, into `target`: a qcow2
        made beforehand over the same backing file (``disk_copy.py``: a
        shallow block copy ended without a pivot), waiting for it; False
        when the domain is not running (nothing is copied). Raises
        HypervisorError, or CopyFailed when the copy ends on its own."""

        def begin(conn: libvirt.virConnect) -> bool:
            domain = self._domain(conn, uuid)
            if not domain.isActive():
                return False
            flags = (
                libvirt.VIR_DOMAIN_BLOCK_COPY_SHALLOW
                | libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT
                | libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
            )
            _end_stale_copy(domain, device)
            domain.blockCopy(device, disk_copy.shallow_copy_xml(target), None, flags)
            return True

        def finished(conn: libvirt.virConnect) -> bool:
            domain = self._domain(conn, uuid, gone="went away")
            state = disk_copy.mirror_state(domain.XMLDesc(0), device)
            if state is None:
                raise disk_copy.CopyFailed("the block copy ended before it was in sync")
            if state != "ready":
                return False
            domain.blockJobAbort(device, 0)  # in sync: ends, the copy kept as of now
            if disk_copy.mirror_state(domain.XMLDesc(0), device) is not None:
                raise disk_copy.CopyFailed("the block copy did not end")
            return True

        def abort(conn: libvirt.virConnect) -> None:
            domain = self._lookup(conn, uuid)
            if domain is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    domain.blockJobAbort(device, 0)

        if not await self._call(begin):
            return False
        await self._job(finished, abort)
        return True

    async def copy_nvram(self, uuid: str, target: Path) -> None:
        """Copy the domain's NVRAM file into `target` as it is at one
        moment: a running domain is paused for the copy and resumed
        (``disk_copy.py``). Raises HypervisorError, or CopyFailed when the
        domain has no NVRAM file."""

        def copy(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, uuid)
            source = disk_copy.nvram_source(domain.XMLDesc(0))
            if source is None or not source.is_file():
                raise disk_copy.CopyFailed("the instance has no NVRAM file")
            running = domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
            if running:
                domain.suspend()
            try:
                shutil.copyfile(source, target)
            finally:
                if running:
                    domain.resume()

        await self._call(copy)

    async def disk_source(self, uuid: str, device: str) -> Path | None:
        """The file behind a domain's disk `device`; None when there is none."""

        def read(conn: libvirt.virConnect) -> Path | None:
            domain = self._domain(conn, uuid)
            return disk_copy.disk_source(domain.XMLDesc(0), device)

        return await self._call(read)

    async def attach_interface(self, uuid: str, xml: str, mac: str) -> None:
        """Plug the NIC `xml` (MAC `mac`) into the running domain and its
        persistent definition, wherever it is not yet (``nic_devices.py``); a
        device of that MAC on another bridge is unplugged and plugged anew.
        Raises HypervisorError when the domain is not running or libvirt
        refuses."""
        bridge = nic_devices.source_bridge(xml)

        def attach(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, uuid)
            if not domain.isActive():
                raise HypervisorError(f"domain {self.domain_name(uuid)} is not running")
            flags = 0
            for flag, dumped in (
                (libvirt.VIR_DOMAIN_AFFECT_LIVE, domain.XMLDesc(0)),
                (libvirt.VIR_DOMAIN_AFFECT_CONFIG, domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)),
            ):
                present = nic_devices.interface_xml(dumped, mac)
                if present is not None and nic_devices.source_bridge(present) != bridge:
                    domain.detachDeviceFlags(present, flag)  # on another bridge
                    present = None
                if present is None:
                    flags |= flag
            if flags:
                domain.attachDeviceFlags(xml, flags)

        await self._call(attach)

    async def detach_interface(self, uuid: str, mac: str) -> None:
        """Unplug the NIC of MAC `mac` from the running domain and its
        persistent definition, wherever it is; no-op without one (or without
        the domain). A live guest may take a while to let go (ACPI eject)."""

        def detach(conn: libvirt.virConnect) -> None:
            domain = self._lookup(conn, uuid)
            if domain is None:
                return
            if domain.isActive():
                live = nic_devices.interface_xml(domain.XMLDesc(0), mac)
                if live is not None:
                    domain.detachDeviceFlags(live, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            inactive = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            persistent = nic_devices.interface_xml(inactive, mac)
            if persistent is not None:
                domain.detachDeviceFlags(persistent, libvirt.VIR_DOMAIN_AFFECT_CONFIG)

        await self._call(detach)

    async def interface_macs(self, uuid: str) -> set[str] | None:
        """The MACs of the domain's NICs, live and persistent; None when the
        domain is not defined."""

        def read(conn: libvirt.virConnect) -> set[str] | None:
            domain = self._lookup(conn, uuid)
            if domain is None:
                return None
            inactive = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            macs = nic_devices.interface_macs(inactive)
            if domain.isActive():
                macs |= nic_devices.interface_macs(domain.XMLDesc(0))
            return macs

        return await self._call(read)

    async def remove(self, uuid: str) -> bool:
        """Stop and undefine the domain (with its NVRAM); whether there was
        one (no-op when absent)."""

        def remove(conn: libvirt.virConnect) -> bool:
            domain = self._lookup(conn, uuid)
            if domain is None:
                return False
            # Undefine first: a start landing in between then cannot bring
            # back a persistent domain whose files are about to go. A stopped
            # domain is gone with its definition; a running one goes with
            # its destroy.
            domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            try:
                domain.destroy()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in _GONE_OR_STOPPED:
                    raise
            return True

        return await self._call(remove)

    async def domains(self) -> list[str]:
        """The instance uuids of every domain this node agent made."""

        def names(conn: libvirt.virConnect) -> list[str]:
            found = (naming.instance_of(self._node, d.name()) for d in conn.listAllDomains())
            return [uuid for uuid in found if uuid is not None]

        return await self._call(names)

    async def usage_stats(self) -> dict[str, dict[str, Any]]:
        """libvirt's CPU, block and interface counters of every running or
        paused domain this node agent made, by instance uuid: one bulk call
        (`virConnectGetAllDomainStats`) for them all, not one per domain."""

        def read(conn: libvirt.virConnect) -> dict[str, dict[str, Any]]:
            found = conn.getAllDomainStats(
                stats=_USAGE_STATS, flags=libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE
            )
            owned = ((naming.instance_of(self._node, d.name()), stats) for d, stats in found)
            return {uuid: stats for uuid, stats in owned if uuid is not None}

        return await self._call(read)

    async def close(self) -> None:
        """Close the connection and the worker thread."""
        if self._reconnecting is not None:
            self._reconnecting.cancel()

        def close(_: libvirt.virConnect) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        if self._conn is not None:
            await self._call(close)
        self._workers.shutdown(wait=False)

    def _domain(
        self, conn: libvirt.virConnect, uuid: str, *, gone: str = "is not defined"
    ) -> libvirt.virDomain:
        """The domain of instance `uuid`; HypervisorError saying it `gone` when none."""
        domain = self._lookup(conn, uuid)
        if domain is None:
            raise HypervisorError(f"domain {self.domain_name(uuid)} {gone}")
        return domain

    async def _job(
        self,
        done: Callable[[libvirt.virConnect], bool | None],
        abort: Callable[[libvirt.virConnect], None],
    ) -> None:
        """Poll a domain's job until `done` says it is (libvirt's
        job-completed event would need a second callback); a cancel (the
        agent stops) aborts it, leaving no job copying on."""
        try:
            while True:
                if await self._call(done):
                    return
                await asyncio.sleep(BACKUP_POLL)
        except asyncio.CancelledError:
            with contextlib.suppress(HypervisorError):
                await asyncio.shield(self._call(abort))
            raise

    def _lookup(self, conn: libvirt.virConnect, uuid: str) -> libvirt.virDomain | None:
        try:
            return conn.lookupByName(self.domain_name(uuid))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    async def _call(self, work: Callable[[libvirt.virConnect], T]) -> T:
        self._loop = asyncio.get_running_loop()

        def run() -> T:
            conn = self._connection()
            try:
                return work(conn)
            except libvirt.libvirtError as exc:
                if not conn.isAlive():
                    self._forget(conn)  # reopened on the next call
                raise HypervisorError(str(exc.get_error_message() or exc)) from exc

        return await self._loop.run_in_executor(self._workers, run)

    def _connection(self) -> libvirt.virConnect:
        """The open connection, reopened after libvirtd went away (worker thread)."""
        with self._connecting:
            if self._conn is not None and self._conn.isAlive():
                return self._conn
            return self._open()

    def _open(self) -> libvirt.virConnect:
        _ensure_event_thread()
        conn = None
        try:
            conn = libvirt.open(self._uri)
            conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None
            )
            conn.registerCloseCallback(self._closed, None)
            conn.setKeepAlive(5, 3)
        except libvirt.libvirtError as exc:
            if conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.close()
            raise HypervisorError(f"cannot reach libvirt at {self._uri}: {exc}") from exc
        self._conn = conn
        log.info("connected to libvirt", extra={"fields": {"uri": self._uri}})
        return conn

    def _forget(self, conn: libvirt.virConnect) -> None:
        """Drop `conn` if it is still the current connection (any thread)."""
        with self._connecting:
            current, stale = self._conn, self._conn is conn
            if stale:
                self._conn = None
        if stale and current is not None:
            with contextlib.suppress(libvirt.libvirtError):
                current.close()

    def _closed(self, conn: libvirt.virConnect, reason: int, _: Any) -> None:
        """libvirt's event thread: the connection dropped (libvirtd restarted,
        say). Reconnect at once rather than at the next call, so lifecycle
        events flow again."""
        self._forget(conn)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._reconnect_soon)

    def _reconnect_soon(self) -> None:
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Retry until libvirtd answers again; then what happened while it was
        away is read afresh."""
        delay = RECONNECT_START
        while True:
            await asyncio.sleep(delay)
            try:
                await self.version()
            except HypervisorError:
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            log.info("libvirt connection restored", extra={"fields": {"uri": self._uri}})
            self._reconnected()
            return

    def _lifecycle(
        self, conn: libvirt.virConnect, domain: libvirt.virDomain, event: int, detail: int, _: Any
    ) -> None:
        """libvirt's event thread: pass our domains' new power state on."""
        name = domain.name()
        state = event_power(event, detail)
        uuid = naming.instance_of(self._node, name)
        if state is None or uuid is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._observed, uuid, state)


def _end_stale_copy(domain: libvirt.virDomain, device: str) -> None:
    """End a block copy a killed node agent left mirroring `device` (only
    this agent starts copies on its domains): it would hold the disk's
    block job slot, and no copy could begin (worker thread)."""
    if disk_copy.mirror_state(domain.XMLDesc(0), device) is not None:
        log.warning("ending a block copy left on %s of %s", device, domain.name())
        domain.blockJobAbort(device, 0)


_OPERATIONS: dict[int, Callable[[libvirt.virDomain], object]] = {
    Operation.POWER_OPERATION_REBOOT_SOFT: lambda d: d.reboot(
        libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN
    ),
    Operation.POWER_OPERATION_REBOOT_HARD: lambda d: d.reset(),
    Operation.POWER_OPERATION_POWER_OFF: lambda d: d.destroy() if d.isActive() else None,
    Operation.POWER_OPERATION_POWER_ON: lambda d: None if d.isActive() else d.create(),
    Operation.POWER_OPERATION_PAUSE: lambda d: d.suspend(),
    Operation.POWER_OPERATION_UNPAUSE: lambda d: d.resume(),
}
"""What each power operation asks of libvirt."""
