"""`POST /artifacts` (reference §3.3, with §11 Q3): check everything first
(the URL, the namespace and its trust, `shared` from system only, a node to
fetch), then find or create the image artifact and ask one node to fetch
its source, in one write: `fetch_node` and `fetch_requested_at`. The view
is answered at once; a new artifact shows `initial`, index 0, no blobs.

The node agent named in `fetch_node` fetches the source, records the blob
and the version (or the error) and clears `fetch_node`. A cache of an
artifact that exists asks for the fetch again: the node checks whether the
source changed since its newest version (reference §2.7 step 2) and fetches
it into a new version only then.
"""

from __future__ import annotations

import random
import time

from sfmesh.v1 import artifact_pb2, artifact_service_pb2, records_pb2

from services.api.artifacts import rules, sources
from services.api.artifacts.finding import Finder
from services.api.artifacts.lookup import ArtifactLookup
from services.api.artifacts.store import ATTEMPTS, ArtifactStore
from services.api.clients.events import ARTIFACT, Events
from services.api.clients.node_agents import NodeAgents
from services.api.namespaces import rules as namespace_rules
from services.api.namespaces.store import NamespaceStore
from services.api.visibility import SYSTEM
from services.common import errors

FETCH_RETRY_AFTER = 5
"""Seconds a cache refused for want of a node is told to wait."""


class Caching:
    """Cache requests."""

    def __init__(
        self,
        artifacts: ArtifactStore,
        namespaces: NamespaceStore,
        lookup: ArtifactLookup,
        finder: Finder,
        events: Events,
        agents: NodeAgents,
        rng: random.Random | None = None,
    ) -> None:
        self._agents = agents
        self._artifacts = artifacts
        self._namespaces = namespaces
        self._lookup = lookup
        self._finder = finder
        self._events = events
        self._rng = rng or random.SystemRandom()

    async def cache(
        self, request: artifact_service_pb2.CacheArtifactRequest, caller: str
    ) -> artifact_pb2.Artifact:
        """Find or create the artifact of `request.url` and ask for its fetch."""
        given = request.namespace if request.HasField("namespace") else ""
        target = given or caller
        namespace_rules.check_visible(caller, await self._namespaces.get(target))
        if request.shared and caller != SYSTEM:
            raise errors.PermissionDenied(
                "only the system namespace can create shared artifacts", reason="NOT_SYSTEM"
            )
        if not request.url:
            raise errors.InvalidArgument("no url specified")
        sources.check_image_url("url", request.url)
        node = await self._fetch_node()
        now = time.time()
        for _ in range(ATTEMPTS):
            found = await self._finder.find_or_plan(
                target,
                artifact_pb2.ARTIFACT_TYPE_IMAGE,
                request.url,
                lambda uuid: rules.new_record(
                    uuid=uuid,
                    artifact_type=artifact_pb2.ARTIFACT_TYPE_IMAGE,
                    source_url=request.url,
                    namespace=target,
                    name=sources.name_of(request.url),
                    shared=request.shared,
                    now=now,
                ),
            )
            if found.new is not None:
                found.new.fetch_node, found.new.fetch_requested_at = node, now
                if await self._artifacts.commit(found.writes()):
                    return await self._requested(found.new, created=True)
                continue
            assert found.existing is not None  # found, or planned above
            try:
                record = await self._artifacts.update(
                    found.existing, lambda record: _ask_fetch(record, node, now, request.shared)
                )
            except errors.NotFound:  # deleted meanwhile: look again
                continue
            return await self._requested(record, created=False)
        raise errors.Aborted("the artifact kept changing; try again")

    async def _requested(
        self, record: records_pb2.ArtifactRecord, *, created: bool
    ) -> artifact_pb2.Artifact:
        uuid = record.artifact.uuid
        self._events.audit(uuid, "creation request from REST API", kind=ARTIFACT)
        if created:
            self._events.attribute_set(uuid, "state", "initial", kind=ARTIFACT)
        self._events.audit(uuid, "fetch requested", {"node": record.fetch_node}, kind=ARTIFACT)
        return await self._lookup.view(record)

    async def _fetch_node(self) -> str:
        nodes = await self._agents.answering(await self._artifacts.nodes())
        if not nodes:
            raise errors.Unavailable(
                "no node is up to fetch the artifact; try again later",
                reason="NO_FETCH_NODE",
                retry_after=FETCH_RETRY_AFTER,
            )
        return self._rng.choice(nodes)


def _ask_fetch(record: records_pb2.ArtifactRecord, node: str, now: float, shared: bool) -> None:
    """Ask `node` to fetch an artifact's source again; `shared` (from
    system) shares a system artifact. Pure."""
    if record.artifact.state not in rules.MATCHABLE:
        raise errors.NotFound("artifact not found")
    record.fetch_node, record.fetch_requested_at = node, now
    if shared and record.artifact.namespace == SYSTEM:
        record.artifact.shared = True
