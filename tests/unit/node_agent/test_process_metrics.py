"""services/node_agent/process_metrics.py: which processes are the mesh's,
and the flat object GET /nodes/{node}/processmetrics answers."""

from __future__ import annotations

import os
import time

import pytest

from services.node_agent.process_metrics import (
    MIN_AGE,
    ProcessSample,
    mesh_name,
    process_metrics,
    read_processes,
)


@pytest.mark.parametrize(
    ("cmdline", "name", "expected"),
    [
        (["/venv/bin/python", "-m", "services.node_agent"], "python", "sfmesh-node_agent"),
        (
            ["python3", "-u", "-m", "services.api_gateway", "--listen", "x"],
            "python3",
            "sfmesh-api_gateway",
        ),
        (["python", "-m", "launcher", "--role", "api"], "python", "sfmesh-launcher"),
        (["/usr/bin/etcd", "--data-dir", "d"], "etcd", "etcd"),
        (["python", "-m", "pytest"], "python", None),
        (["python", "services.api"], "python", None),
        (["bash", "-c", "-m services.api"], "bash", None),
        ([], "kworker/0:1", None),
    ],
)
def test_mesh_processes_are_named_by_their_module(
    cmdline: list[str], name: str, expected: str | None
) -> None:
    assert mesh_name(cmdline, name) == expected


def test_each_process_gets_its_time_age_and_fraction_under_a_safe_name() -> None:
    metrics = process_metrics([ProcessSample("sfmesh-node_agent", 7, 30.0, 120.0)])
    assert metrics == {
        "process_cpu_time_sfmesh_node_agent": 30.0,
        "process_age_sfmesh_node_agent": 120.0,
        "process_cpu_fraction_sfmesh_node_agent": 0.25,
    }


def test_young_processes_are_left_out() -> None:
    young = ProcessSample("sfmesh-api", 8, 5.0, MIN_AGE - 1)
    assert process_metrics([young]) == {}


def test_shared_names_get_their_pid() -> None:
    metrics = process_metrics(
        [
            ProcessSample("sfmesh-node_agent", 10, 1.0, 100.0),
            ProcessSample("sfmesh-node_agent", 11, 2.0, 100.0),
            ProcessSample("etcd", 12, 3.0, 100.0),
        ]
    )
    assert metrics["process_cpu_time_sfmesh_node_agent_10"] == 1.0
    assert metrics["process_cpu_time_sfmesh_node_agent_11"] == 2.0
    assert metrics["process_cpu_time_etcd"] == 3.0
    assert "process_cpu_time_sfmesh_node_agent" not in metrics


def test_the_reader_leaves_pytest_out_and_reads_sane_figures() -> None:
    samples = read_processes(time.time())
    assert all(sample.pid != os.getpid() for sample in samples)  # pytest is not ours
    assert all(sample.age_seconds >= 0 and sample.cpu_seconds >= 0 for sample in samples)
