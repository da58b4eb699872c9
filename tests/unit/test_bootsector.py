"""guests/bootsector.py: the shape of the boot sector test guest."""

from __future__ import annotations

from pathlib import Path

import pytest

from guests.bootsector import LOAD_ADDRESS, MARKER, boot_sector, main


def test_a_boot_sector_is_512_bytes_ending_in_the_signature() -> None:
    sector = boot_sector()
    assert len(sector) == 512
    assert sector[510:] == b"\x55\xaa"


def test_the_marker_line_is_embedded_nul_terminated() -> None:
    sector = boot_sector()
    assert MARKER == b"SFMESH BOOT OK"
    assert sector.count(MARKER + b"\r\n\0") == 1


def test_the_code_points_si_at_the_marker() -> None:
    sector = boot_sector(b"hello")
    # mov si, imm16 (0xBE) loads the marker's absolute address in segment 0.
    at = sector.index(b"\xbe")
    address = int.from_bytes(sector[at + 1 : at + 3], "little")
    assert sector[address - LOAD_ADDRESS :].startswith(b"hello\r\n\0")


def test_the_partition_table_stays_empty() -> None:
    sector = boot_sector(b"x" * 420)
    assert sector[446:510] == bytes(64)


@pytest.mark.parametrize("marker", [b"x" * 421, b"x" * 600])
def test_a_marker_too_long_is_refused(marker: bytes) -> None:
    with pytest.raises(ValueError, match="at most 420 fit"):
        boot_sector(marker)


def test_a_marker_with_nul_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        boot_sector(b"a\0b")


def test_main_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "boot.raw"
    main([str(out)])
    assert out.read_bytes() == boot_sector()
