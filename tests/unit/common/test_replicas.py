"""Naming several replicas of one service for one channel (replicas.py)."""

from __future__ import annotations

import json

import pytest

from services.common.replicas import (
    ReplicaAddressError,
    options,
    parse_replicas,
    target,
)


def test_one_address_is_a_plain_channel() -> None:
    addresses = parse_replicas("api.example:13010", role="api")
    assert target(addresses) == "api.example:13010"
    assert options(addresses, tls_name="api.sfmesh") == []


def test_several_addresses_are_balanced_with_health_checks() -> None:
    addresses = parse_replicas("10.0.0.1:13012, 10.0.0.2:13012,10.0.0.3:13012", role="eventlog")
    assert target(addresses) == "ipv4:10.0.0.1:13012,10.0.0.2:13012,10.0.0.3:13012"
    (config_option,) = options(addresses, tls_name=None)
    config = json.loads(config_option[1])
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert config["healthCheckConfig"] == {"serviceName": ""}
    assert ("grpc.ssl_target_name_override", "eventlog.sfmesh") in options(
        addresses, tls_name="eventlog.sfmesh"
    )


def test_ipv6_replicas() -> None:
    assert target(parse_replicas("[fd00::1]:13010,[fd00::2]:13010", role="api")) == (
        "ipv6:[fd00::1]:13010,[fd00::2]:13010"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no api address"),
        (" , ", "no api address"),
        ("10.0.0.1:13010,10.0.0.1:13010", "api address '10.0.0.1:13010' is listed twice"),
        ("api1:13010,api2:13010", "several api replicas are named by IP address"),
        ("10.0.0.1:13010,10.0.0.2:port", "10.0.0.2:port"),
    ],
)
def test_refused(text: str, says: str) -> None:
    with pytest.raises(ReplicaAddressError, match=says):
        parse_replicas(text, role="api")


def test_mixed_families_refused() -> None:
    with pytest.raises(ReplicaAddressError, match="mix"):
        target(parse_replicas("10.0.0.1:13010,[fd00::2]:13010", role="api"))
