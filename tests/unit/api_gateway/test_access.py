"""services/api_gateway/access.py: an exchange's log line and its bounded labels."""

from __future__ import annotations

import logging
import time

import orjson
import pytest
from prometheus_client import CollectorRegistry

from services.api_gateway.access import ROUTE, finish, route_labels
from services.common.metrics import RequestMetrics


def test_the_route_label_is_the_pattern_the_app_named() -> None:
    scope = {"method": "GET", "path": "/instances/0b7c", ROUTE: "/instances/{ref}"}
    assert route_labels(scope, "GET") == ("/instances/{ref}", "GET")


def test_a_request_no_route_took_is_unmatched_and_odd_methods_are_other() -> None:
    assert route_labels({"path": "/no/such/0b7c"}, "DELETE") == ("unmatched", "DELETE")
    assert route_labels({"path": "/x"}, "PROPFIND") == ("unmatched", "OTHER")


def test_a_finished_exchange_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    counted = RequestMetrics("t_http", ("route", "method"), what="t", registry=registry)
    scope = {"method": "POST", "path": "/instances", ROUTE: "/instances"}
    with caplog.at_level(logging.INFO, logger="sfmesh.api_gateway.access"):
        finish(scope, status=400, started=time.perf_counter(), request_id="r1", metrics=counted)
    line = orjson.loads(caplog.records[-1].getMessage())
    assert (line["method"], line["path"], line["status"], line["request_id"]) == (
        "POST", "/instances", 400, "r1",
    )  # fmt: skip
    labels = {"route": "/instances", "method": "POST"}
    assert registry.get_sample_value("t_http_requests_total", {**labels, "code": "400"}) == 1
    assert registry.get_sample_value("t_http_request_duration_seconds_count", labels) == 1
