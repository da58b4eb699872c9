"""Unit tests of the pure half of services/node_agent/configdrive.py."""

from __future__ import annotations

import json
from types import MappingProxyType

from services.node_agent.configdrive import ConfigDriveContent, config_drive_files

UUID = "8b1c6f7e-3c2a-4f5e-9d0b-2a7c1e4f6a90"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7 user@host"
EMPTY_NETWORK: dict[str, list[object]] = {"links": [], "networks": [], "services": []}
META = "openstack/latest/meta_data.json"
NETWORK = "openstack/latest/network_data.json"
USER = "openstack/latest/user_data"


def content(user_data: bytes | None = None, ssh_key: str | None = None) -> ConfigDriveContent:
    return ConfigDriveContent(
        uuid=UUID,
        hostname="web-1",
        user_data=user_data,
        ssh_key=ssh_key,
        network_data=EMPTY_NETWORK,
    )


def test_meta_data_carries_the_instance_in_compact_json() -> None:
    raw = config_drive_files(content())[META]
    assert b"\n" not in raw
    assert b": " not in raw
    assert b", " not in raw
    assert json.loads(raw) == {
        "uuid": UUID,
        "hostname": "web-1",
        "name": "web-1",
        "launch_index": 0,
        "availability_zone": "sfmesh",
        "public_keys": {},
        "files": [],
        "devices": [],
    }


def test_without_user_data_there_is_no_user_data_file() -> None:
    assert set(config_drive_files(content())) == {META, NETWORK}


def test_user_data_is_written_byte_for_byte() -> None:
    script = b"#!/bin/sh\necho \xe2\x9c\x93 > /tmp/ran\n\x00\xff"
    files = config_drive_files(content(user_data=script))
    assert set(files) == {META, NETWORK, USER}
    assert files[USER] == script


def test_empty_user_data_is_still_a_file() -> None:
    assert config_drive_files(content(user_data=b""))[USER] == b""


def test_an_ssh_key_is_published_as_sshkey() -> None:
    meta = json.loads(config_drive_files(content(ssh_key=KEY))[META])
    assert meta["public_keys"] == {"sshkey": KEY}


def test_an_empty_ssh_key_is_no_key() -> None:
    meta = json.loads(config_drive_files(content(ssh_key=""))[META])
    assert meta["public_keys"] == {}


def test_network_data_is_passed_through_compact() -> None:
    network = {
        "links": [{"id": "eth0", "type": "phy", "ethernet_mac_address": "52:54:00:25:00:01"}],
        "networks": [{"id": "net0", "link": "eth0", "type": "ipv4_dhcp"}],
        "services": [],
    }
    drive = ConfigDriveContent(
        uuid=UUID,
        hostname="web-1",
        user_data=None,
        ssh_key=None,
        network_data=MappingProxyType(network),
    )
    raw = config_drive_files(drive)[NETWORK]
    assert json.loads(raw) == network
    assert b"\n" not in raw
    assert b": " not in raw


def test_the_empty_network_document() -> None:
    assert config_drive_files(content())[NETWORK] == b'{"links":[],"networks":[],"services":[]}'


def test_every_file_is_under_openstack_latest() -> None:
    files = config_drive_files(content(user_data=b"x", ssh_key=KEY))
    assert all(name.startswith("openstack/latest/") for name in files)
