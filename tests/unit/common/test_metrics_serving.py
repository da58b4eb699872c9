"""services/common/metrics.py: request series, the endpoint and its off switch."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from services.common import metrics
from services.common.metrics import RequestMetrics, metrics_setting, serve_metrics


def series(registry: CollectorRegistry) -> RequestMetrics:
    return RequestMetrics("t_rpc", ("method",), what="test requests", registry=registry)


def test_a_request_is_counted_by_code_and_timed_by_its_labels() -> None:
    registry = CollectorRegistry()
    recorded = series(registry)
    recorded.observe(("/a",), "OK", 0.002)
    recorded.observe(("/a",), "OK", 0.5)
    recorded.observe(("/a",), "NOT_FOUND", 20.0)
    value = registry.get_sample_value
    assert value("t_rpc_requests_total", {"method": "/a", "code": "OK"}) == 2
    assert value("t_rpc_requests_total", {"method": "/a", "code": "NOT_FOUND"}) == 1
    assert value("t_rpc_request_duration_seconds_count", {"method": "/a"}) == 3
    assert value("t_rpc_request_duration_seconds_bucket", {"method": "/a", "le": "0.001"}) == 0
    assert value("t_rpc_request_duration_seconds_bucket", {"method": "/a", "le": "0.0025"}) == 1
    assert value("t_rpc_request_duration_seconds_bucket", {"method": "/a", "le": "10.0"}) == 2
    assert value("t_rpc_request_duration_seconds_bucket", {"method": "/a", "le": "+Inf"}) == 3


def test_the_setting_is_off_by_default_and_named_per_service() -> None:
    setting = metrics_setting("node_agent")
    assert (setting.flag, setting.default) == ("--metrics-listen", "")
    assert setting.env_name == "SFMESH_NODE_AGENT_METRICS_LISTEN"


def test_off_serves_nothing_and_turns_nothing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_enabled", False)
    assert serve_metrics("") is None
    assert not metrics.enabled()


def test_on_serves_the_default_registry_with_process_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "_enabled", False)
    port = serve_metrics("127.0.0.1:0")
    assert port and metrics.enabled()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        names = {family.name for family in text_string_to_metric_families(answer.read().decode())}
    assert "process_cpu_seconds" in names and "python_info" in names


def test_a_port_it_cannot_take_stops_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_enabled", False)
    port = serve_metrics("127.0.0.1:0")
    monkeypatch.setattr(metrics, "_enabled", False)
    with pytest.raises(SystemExit, match=rf"--metrics-listen 127.0.0.1:{port}: cannot listen"):
        serve_metrics(f"127.0.0.1:{port}")
    with pytest.raises(SystemExit, match="cannot listen"):
        serve_metrics("127.0.0.1:http")
    assert not metrics.enabled()
