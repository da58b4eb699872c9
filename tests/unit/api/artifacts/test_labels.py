"""Label paths. Pure."""

from __future__ import annotations

import pytest

from services.api.artifacts.labels import split_label
from services.api.artifacts.store import deltas_of
from services.common import errors


def test_a_plain_label_is_the_callers() -> None:
    assert split_label("golden", "team") == ("team", "golden")
    assert split_label("other/golden", "team") == ("other", "golden")


@pytest.mark.parametrize("name", ["", "ns/", "a/b/c"])
def test_malformed_label_paths_are_400(name: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        split_label(name, "team")


def test_reference_deltas_add_and_release() -> None:
    assert deltas_of(added=["b1"], released=["b0", "b0"]) == {"b1": 1, "b0": -2}
    assert deltas_of(added=["b1"], released=["b1"]) == {"b1": 0}
