"""How a part built early tells parts built later that something happened,
so that the node agent's parts are made in dependency order with no forward
reference (`assembly.py`). A part that raises a notice is given the notice
itself as its callback; a part that hears one is connected to it right
after it is made.

- `instance_changed(uuid)`: a record placed here changed (`placed.py`); the
  reconciler converges it, the reporter reports at once, the agent monitors
  look at it again.
- `power_observed(uuid, power)`: a lifecycle event of one of our domains
  (`hypervisor.py`); the reconciler converges the instance, once the placed
  instances are known (`resync.once_synced`).
- `libvirt_reconnected()`: libvirtd answers again (`hypervisor.py`); every
  hosted instance is converged again (`resync.py`).
- `image_progress(url, done, total)`: a download moved on (`images.py`); the
  builder emits status events on the instances waiting for it.

Listeners run in the order they were connected, on the event loop, at once;
what one raises reaches the part that raised the notice, as a plain
callback's would. A notice nobody hears yet does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, ParamSpec

from sfmesh.v1 import instance_pb2

P = ParamSpec("P")


class Notice(Generic[P]):
    """One kind of notice: calling it calls every listener with its arguments."""

    def __init__(self) -> None:
        self._listeners: list[Callable[P, None]] = []

    def connect(self, listener: Callable[P, None]) -> None:
        """Have `listener` hear every later notice of this kind, after those
        connected before it."""
        self._listeners.append(listener)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in self._listeners:
            listener(*args, **kwargs)


@dataclass(frozen=True)
class Notices:
    """Every notice passed between the node agent's parts (the list above)."""

    instance_changed: Notice[[str]] = field(default_factory=Notice)
    """An instance record placed here changed, or was first seen: its uuid."""
    power_observed: Notice[[str, instance_pb2.PowerState]] = field(default_factory=Notice)
    """libvirt says an instance's domain changed power state."""
    libvirt_reconnected: Notice[[]] = field(default_factory=Notice)
    """libvirtd answers again after a lost connection: events may have been missed."""
    image_progress: Notice[[str, int, int | None]] = field(default_factory=Notice)
    """An image download's URL, bytes so far and total (None: unknown)."""
