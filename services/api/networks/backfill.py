"""Keys added by later versions, written for records made before them: each
NIC's index entry (`/sfmesh/v1/interface/<uuid>`) and, for live instances,
its MAC's reservation on its network. Runs once per mesh, in the background
at start-up; every write is create-only, so a run cut short, a second run
or a create alongside changes nothing."""

from __future__ import annotations

import logging
import time

from services.common import errors
from services.common import instance_states as states
from services.common.addresses import mac_key, reservation
from services.common.instance_store import InstanceStore
from services.common.store import Put, Store, key

log = logging.getLogger("sfmesh.api.backfill")

DONE = key("migration", "nic-keys")


async def backfill_nic_keys(store: Store, instances: InstanceStore) -> None:
    """Write the missing NIC keys unless this mesh has them all already."""
    try:
        if await store.get(DONE) is not None:
            return
        written = 0
        async for stored in instances.all():
            instance = stored.record.instance
            for nic in instance.interfaces:
                wanted = [Put(key("interface", nic.uuid), instance.uuid.encode(), 0)]
                if instance.state != states.DELETED:  # a deleted one gave its MAC back
                    held = reservation(nic.macaddr, "mac", ["instance", instance.uuid], time.time())
                    wanted.append(
                        Put(mac_key(nic.network_uuid, nic.macaddr), held.SerializeToString(), 0)
                    )
                for put in wanted:
                    if await store.get(put.key) is None and await store.commit([put]):
                        written += 1
        await store.commit([Put(DONE, b"1")])
        log.info("backfilled NIC keys", extra={"fields": {"written": written}})
    except errors.SfmeshError as exc:  # etcd away: the next start tries again
        log.warning("cannot backfill NIC keys: %s", exc.message)
