"""deploy/grafana/sfmesh.json: valid, its datasource a variable, and every
series it draws one the mesh declares (every module of `services`
imported, then the Prometheus registry read)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

import services

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "sfmesh.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def declared() -> set[str]:
    """The series names every module of the mesh declares."""
    for module in pkgutil.walk_packages(services.__path__, "services."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    return {sample.name for family in REGISTRY.collect() for sample in family.samples} | {
        family.name for family in REGISTRY.collect()
    }


def drawn(board: dict[str, Any]) -> set[str]:
    expressions = [
        target["expr"]
        for panel in board["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]
    return {name for expr in expressions for name in re.findall(r"\bsfmesh_\w+", expr)}


def test_every_series_drawn_is_declared() -> None:
    names = declared()
    missing = {
        name
        for name in drawn(dashboard())
        if name not in names and not any(name.removesuffix(s) in names for s in SUFFIXES)
    }
    assert not missing


def test_the_datasource_is_a_variable_every_panel_uses() -> None:
    board = dashboard()
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"])


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        box = panel["gridPos"]
        mine = {
            (x, y)
            for x in range(box["x"], box["x"] + box["w"])
            for y in range(box["y"], box["y"] + box["h"])
        }
        assert not mine & cells, panel["title"]
        cells |= mine
