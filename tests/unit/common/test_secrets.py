"""services/common/secrets.py: one secret per file, created once, mode 0600."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

from services.common.secrets import load_or_create_secret


def test_creates_with_mode_0600_and_parents(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "jwt.secret"
    value = load_or_create_secret(path)
    assert path.read_text() == value + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(value) == 43  # token_urlsafe(32)


def test_nbytes(tmp_path: Path) -> None:
    assert len(load_or_create_secret(tmp_path / "k", nbytes=24)) == 32


def test_second_call_returns_same_value(tmp_path: Path) -> None:
    path = tmp_path / "service.key"
    first = load_or_create_secret(path)
    assert load_or_create_secret(path) == first
    assert load_or_create_secret(path) == first


def test_distinct_files_get_distinct_values(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path / "a") != load_or_create_secret(tmp_path / "b")


def test_existing_file_is_read_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "system.key"
    path.write_text("  operator-chosen-secret \n\n")
    path.chmod(0o640)
    assert load_or_create_secret(path) == "operator-chosen-secret"
    # An existing file is neither rewritten nor re-permissioned.
    assert path.read_text() == "  operator-chosen-secret \n\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_concurrent_callers_agree(tmp_path: Path) -> None:
    path = tmp_path / "race.key"
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(load_or_create_secret(path))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert set(results) == {path.read_text().strip()}
