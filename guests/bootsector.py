"""The project's smallest test guest: a 512-byte MBR boot sector whose
real-mode code writes a marker line to COM1 and halts.

The BIOS loads it at 0000:7C00 and jumps there with DL holding the boot drive;
nothing else about the registers is assumed. The code sets DS to 0 and
addresses the marker absolutely. qemu's emulated 16550 UART takes bytes
written to its data port (0x3f8) at once, so no initialisation or polling is
needed. The bytes are hand-assembled below, one instruction per line.

    python -m guests.bootsector OUT   writes the boot sector to OUT
"""

from __future__ import annotations

import argparse
from pathlib import Path

MARKER = b"SFMESH BOOT OK"
"""What the guest prints (followed by CR LF) once it runs."""

SECTOR_SIZE = 512
LOAD_ADDRESS = 0x7C00
"""Where the BIOS loads the boot sector (segment 0)."""
SIGNATURE = b"\x55\xaa"
"""The boot signature in the sector's last two bytes."""
_PARTITION_TABLE = 446
"""Code and marker end before the partition table, left empty."""


def _code(marker_address: int) -> bytes:
    """The program, printing the NUL-terminated string at ``marker_address``."""
    return b"".join(
        [
            b"\x31\xc0",  # 00        xor ax, ax
            b"\x8e\xd8",  # 02        mov ds, ax          ; DS = 0
            b"\xfc",  # 04            cld                 ; lodsb counts up
            b"\xbe" + marker_address.to_bytes(2, "little"),  # 05  mov si, marker
            b"\xba\xf8\x03",  # 08    mov dx, 0x3f8       ; COM1 data port
            b"\xac",  # 0b  next:     lodsb               ; al = [ds:si++]
            b"\x84\xc0",  # 0c        test al, al
            b"\x74\x03",  # 0e        jz halt             ; +3 -> 13
            b"\xee",  # 10            out dx, al
            b"\xeb\xf8",  # 11        jmp next            ; -8 -> 0b
            b"\xfa",  # 13  halt:     cli
            b"\xf4",  # 14            hlt
            b"\xeb\xfc",  # 15        jmp halt            ; -4 -> 13
        ]
    )  # 17  marker:  the marker, CR, LF, NUL


_CODE_SIZE = len(_code(0))


def boot_sector(marker: bytes = MARKER) -> bytes:
    """A boot sector printing ``marker`` and CR LF to COM1, then halting.

    Raises ValueError when the marker holds a NUL byte or does not fit before
    the partition table (at most 420 bytes)."""
    if b"\0" in marker:
        raise ValueError("the marker cannot contain a NUL byte")
    text = marker + b"\r\n\0"
    room = _PARTITION_TABLE - _CODE_SIZE
    if len(text) > room:
        raise ValueError(f"the marker is {len(marker)} bytes; at most {room - 3} fit")
    body = _code(LOAD_ADDRESS + _CODE_SIZE) + text
    return body.ljust(SECTOR_SIZE - len(SIGNATURE), b"\0") + SIGNATURE


def main(argv: list[str] | None = None) -> None:
    """Write the boot sector to the file named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the file to write")
    args = parser.parse_args(argv)
    args.out.write_bytes(boot_sector())


if __name__ == "__main__":
    main()
