"""services/api/instances/power.py: power operations need a created instance."""

from __future__ import annotations

import pytest
from sfmesh.v1 import instance_pb2

from services.api.instances.power import check_ready
from services.common import errors
from services.common import instance_states as states


@pytest.mark.parametrize("state", sorted(set(states.TRANSITIONS) - {states.CREATED, 0}))
def test_every_other_state_is_not_ready(state: int) -> None:
    instance = instance_pb2.Instance(uuid="u", state=state)  # type: ignore[arg-type]
    with pytest.raises(errors.NotReady, match=r"^instance u is not ready \("):
        check_ready(instance)


def test_created_is_ready_and_the_message_names_the_state() -> None:
    check_ready(instance_pb2.Instance(uuid="u", state=states.CREATED))
    with pytest.raises(errors.NotReady, match=r"\(delete-wait\)$"):
        check_ready(instance_pb2.Instance(uuid="u", state=states.DELETE_WAIT))
