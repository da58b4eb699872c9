"""The suite's figures, per case, for the terminal summary and build/reliability.json."""

from __future__ import annotations

from typing import Any

FIGURES: dict[str, dict[str, Any]] = {}
