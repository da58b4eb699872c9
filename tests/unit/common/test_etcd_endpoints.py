"""services/common/etcd_endpoints.py: `--etcd` as one endpoint or several."""

from __future__ import annotations

import argparse

import pytest

from services.common.config import MESH_SETTINGS
from services.common.etcd_endpoints import parse_endpoints
from services.common.settings import add_settings


def test_one_endpoint_is_a_list_of_one() -> None:
    assert parse_endpoints("127.0.0.1:13379") == ("127.0.0.1:13379",)


def test_several_endpoints_keep_their_order() -> None:
    text = "10.0.0.2:13379, 10.0.0.1:13379,etcd3.example:2379,[fd00::1]:13379"
    assert parse_endpoints(text) == (
        "10.0.0.2:13379",
        "10.0.0.1:13379",
        "etcd3.example:2379",
        "[fd00::1]:13379",
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "no etcd endpoint"),
        ("10.0.0.1:1,,10.0.0.2:1", "an empty etcd endpoint"),
        ("10.0.0.1:1,", "an empty etcd endpoint"),
        ("10.0.0.1", "'10.0.0.1': not host:port"),
        (":13379", "':13379': not host:port"),
        ("10.0.0.1:x", "the port is not 1-65535"),
        ("10.0.0.1:0", "the port is not 1-65535"),
        ("10.0.0.1:65536", "the port is not 1-65535"),
        ("fd00::1:13379", "put an IPv6 host in brackets"),
        ("10.0.0.1:1,10.0.0.1:1", "'10.0.0.1:1' is listed twice"),
    ],
)
def test_a_bad_list_is_refused_naming_the_culprit(text: str, said: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        parse_endpoints(text)
    assert said in str(refused.value)


def test_the_flag_and_its_default_parse_into_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SFMESH_ETCD", raising=False)
    parser = argparse.ArgumentParser()
    add_settings(parser, MESH_SETTINGS)
    assert parser.parse_args([]).etcd == ("127.0.0.1:13379",)
    assert parser.parse_args(["--etcd=a:1,b:2"]).etcd == ("a:1", "b:2")
    monkeypatch.setenv("SFMESH_ETCD", "c:3,d:4")
    parser = argparse.ArgumentParser()
    add_settings(parser, MESH_SETTINGS)
    assert parser.parse_args([]).etcd == ("c:3", "d:4")
