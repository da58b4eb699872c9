"""Reading this process's Prometheus metrics in tests: the default registry
is process-global, so tests compare a sample before and after."""

from __future__ import annotations

from prometheus_client import REGISTRY


def sample(name: str, **labels: str) -> float:
    """The value of one sample of the default registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
