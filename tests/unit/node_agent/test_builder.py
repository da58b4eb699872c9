"""The firmware of an instance: OVMF for UEFI, its variables from OVMF's
template or the blob its `nvram_template` names."""

from __future__ import annotations

from pathlib import Path

from sfmesh.v1 import instance_pb2

from services.node_agent.builder import OVMF, firmware, side_channels
from services.node_agent.domain_xml import SideChannel

FOLDER = Path("/state/instances/x")


def test_a_bios_instance_has_no_firmware() -> None:
    assert firmware(instance_pb2.Instance(), FOLDER, Path("/blobs/ab/abc")) is None


def test_uefi_starts_from_ovmf_s_variables_or_the_template_blob() -> None:
    plain = firmware(instance_pb2.Instance(uefi=True), FOLDER)
    assert plain is not None
    assert (plain.loader, plain.nvram, plain.nvram_template) == (
        OVMF / "OVMF_CODE_4M.fd",
        FOLDER / "nvram.fd",
        OVMF / "OVMF_VARS_4M.fd",
    )
    blob = Path("/state/blobs/ab/abc")
    secure = firmware(instance_pb2.Instance(uefi=True, secure_boot=True), FOLDER, blob)
    assert secure is not None and secure.secure_boot
    assert (secure.loader, secure.nvram_template) == (OVMF / "OVMF_CODE_4M.secboot.fd", blob)


def test_side_channels_once_each_with_sockets_in_the_folder() -> None:
    folder = Path("/state/instances/u")
    instance = instance_pb2.Instance(side_channels=["sf-agent", "serial", "sf-agent"])
    assert side_channels(instance, folder) == (SideChannel("sf-agent", folder / "sc-sf-agent"),)
    assert side_channels(instance_pb2.Instance(), folder) == ()
