"""services/node_agent/blob_reads.py: which bytes a blob read sends, in
which chunks."""

from __future__ import annotations

import pytest

from services.node_agent.blob_reads import CHUNK, read_spans


@pytest.mark.parametrize(
    ("size", "offset", "limit", "spans"),
    [
        (10, 0, 0, [(0, 4), (4, 4), (8, 2)]),  # to the end
        (10, 3, 0, [(3, 4), (7, 3)]),
        (10, 3, 5, [(3, 4), (7, 1)]),  # at most `limit`
        (10, 3, 50, [(3, 4), (7, 3)]),  # a limit past the end stops at it
        (8, 0, 0, [(0, 4), (4, 4)]),  # no empty last chunk
        (10, 10, 0, []),  # at the end: nothing
        (10, 11, 3, []),  # past it: nothing
        (0, 0, 0, []),
    ],
)
def test_read_spans(size: int, offset: int, limit: int, spans: list[tuple[int, int]]) -> None:
    assert list(read_spans(size, offset, limit, chunk=4)) == spans


def test_read_spans_default_chunk_is_one_mebibyte() -> None:
    spans = list(read_spans(2 * CHUNK + 1, 0, 0))
    assert spans == [(0, CHUNK), (CHUNK, CHUNK), (2 * CHUNK, 1)]
    assert CHUNK == 2**20
