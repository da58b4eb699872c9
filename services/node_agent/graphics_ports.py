"""The graphical console port of each instance on this node (guest-access
reference §2.1, with our own choices: README.md, "Graphical consoles").

An instance gets its port, `vdi_port`, before its domain is first defined,
and the node agent writes it into the instance's record with `vdi_host`
(the address a viewer dials) in the same compare-and-swap: etcd, not this
process, remembers it, so it survives a restart of the agent, and the
defined domain keeps it across power off and on. A port is in use while an
instance of this node that is not `deleted` holds it in its record (a
teardown clears it), or while this process has chosen it and its record
does not show it yet. A candidate is also bound for a moment, so a port
something else on the host listens at is skipped. A start that finds the
port taken all the same (a process that bound it since, another node agent
sharing this libvirtd) moves the instance to another port
(``reconciler.py``).

There is no `console_port` (the serial console is a file, ``domain_xml.py``)
and no `vdi_tls_port` (SPICE runs without TLS).
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
import socket
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field

from sfmesh.v1 import instance_pb2, records_pb2

from services.common.config import split_address
from services.node_agent.domain_xml import Graphics

DEFAULT_PORTS = range(24000, 32000)
"""Below Linux's ephemeral ports (32768-60999), so no outgoing connection of
the host ever holds one, and above the mesh's own ports (13000-13380)."""
DEFAULT_LISTEN = "127.0.0.1"
WILDCARDS = frozenset({"0.0.0.0", "::"})


class NoFreePort(Exception):
    """Every port of the range is in use."""


@dataclass(frozen=True)
class GraphicsSettings:
    """Where this node's graphical consoles listen."""

    listen: str = DEFAULT_LISTEN
    """The address VNC and SPICE listen at. Loopback by default: consoles
    have no password, so they are not exposed to the network unless an
    operator says so (a node address on a trusted network, or a wildcard)."""
    ports: range = field(default=DEFAULT_PORTS)
    """The ports consoles are given."""


def parse_ports(text: str) -> range:
    """`LOW-HIGH` (both included) as a range of ports, 5900 to 65535. Pure."""
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high)
    except ValueError:
        first = last = -1
    if not sep or not 5900 <= first <= last <= 65535:
        raise ValueError(f"{text!r} is not a port range LOW-HIGH within 5900-65535")
    return range(first, last + 1)


def vdi_kind(vdi: instance_pb2.VdiType) -> str:
    """The graphics of an instance's `video.vdi`: `vnc`, else `spice` (any
    SPICE flavour, and the default). Pure."""
    return "vnc" if vdi == instance_pb2.VDI_TYPE_VNC else "spice"


def ports_held(instances: Iterable[instance_pb2.Instance], *, besides: str) -> set[int]:
    """The ports the records of `instances` hold, but for instance `besides`. Pure."""
    held: set[int] = set()
    for instance in instances:
        if instance.uuid == besides:
            continue
        for name in ("vdi_port", "vdi_tls_port", "console_port"):
            if instance.HasField(name):
                held.add(getattr(instance, name))
    return held


def choose_port(
    taken: Set[int], span: range, start: int, usable: Callable[[int], bool] = lambda _: True
) -> int:
    """The first port of `span` from index `start` on (wrapping round) that
    is not `taken` and is `usable`. Raises NoFreePort. Pure but for `usable`."""
    for offset in range(len(span)):
        port = span[(start + offset) % len(span)]
        if port not in taken and usable(port):
            return port
    raise NoFreePort(f"no free console port in {span.start}-{span.stop - 1}")


def viewer_host(listen: str, advertise: str) -> str:
    """The address a viewer dials: the listen address, or for a wildcard
    the host of the agent's advertised address. Pure."""
    if listen in WILDCARDS:
        return split_address(advertise)[0].strip("[]")
    return listen


def port_free(address: str, port: int) -> bool:
    """Whether `address`:`port` can be bound now (it is bound and let go)."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as QEMU binds
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


class GraphicsPorts:
    """Chooses console ports for the instances of this node."""

    def __init__(
        self,
        hosted: Callable[[], Iterable[instance_pb2.Instance]],
        settings: GraphicsSettings,
        *,
        advertise: str,
        free: Callable[[str, int], bool] = port_free,
        rng: random.Random | None = None,
    ) -> None:
        """`hosted` lists the instances placed here and not deleted;
        `advertise` is the agent's advertised host:port."""
        self._hosted = hosted
        self._settings = settings
        self._host = viewer_host(settings.listen, advertise)
        self._free = free
        self._rng = rng or random.Random()
        self._chosen: dict[str, int] = {}
        """Ports chosen by this process, by instance: the records may not
        show them yet."""

    def choose(self, uuid: str, *, avoid: Set[int] = frozenset()) -> int:
        """A port for instance `uuid` that no other instance here holds, nor
        `avoid` names, and that can be bound now. Raises NoFreePort."""
        hosted = list(self._hosted())
        live = {instance.uuid for instance in hosted}
        self._chosen = {u: p for u, p in self._chosen.items() if u in live or u == uuid}
        taken = ports_held(hosted, besides=uuid)
        taken |= {port for other, port in self._chosen.items() if other != uuid}
        span = self._settings.ports
        port = choose_port(
            taken | set(avoid),
            span,
            self._rng.randrange(len(span)),
            lambda candidate: self._free(self._settings.listen, candidate),
        )
        self._chosen[uuid] = port
        return port

    def assign(self, record: records_pb2.InstanceRecord, port: int) -> None:
        """Write `port` and the viewer's address into an instance record."""
        record.instance.vdi_port = port
        record.vdi_host = self._host

    def device(self, record: records_pb2.InstanceRecord) -> Graphics | None:
        """The graphics device of an instance whose record holds a port;
        None without one."""
        instance = record.instance
        if not instance.HasField("vdi_port"):
            return None
        return Graphics(
            kind=vdi_kind(instance.video.vdi),
            port=instance.vdi_port,
            listen=self._settings.listen,
            concurrent=instance.video.vdi == instance_pb2.VDI_TYPE_SPICECONCURRENT,
        )


def cleared(record: records_pb2.InstanceRecord) -> None:
    """Free an instance's console port in its record (its domain is gone). Pure."""
    record.instance.ClearField("vdi_port")
    record.ClearField("vdi_host")
