"""deploy/hosts/ and docs/deploy.md: every host config the deploy page
shows is a file of deploy/hosts/, word for word, and parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from launcher.config import load_config

REPO = Path(__file__).resolve().parents[2]
HOSTS = sorted((REPO / "deploy" / "hosts").glob("*.toml"))


@pytest.mark.parametrize("path", HOSTS, ids=lambda path: path.stem)
def test_each_host_config_parses(path: Path) -> None:
    config = load_config(path, hostname="unused")
    assert config.name == path.stem
    assert config.address.startswith("10.0.")


def test_the_deploy_page_shows_the_files() -> None:
    page = (REPO / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", page, flags=re.S)
    texts = {path.read_text() for path in HOSTS}
    assert all(block in texts for block in blocks)
    assert len(blocks) == len(HOSTS) - 1  # cp3 is cp2 with its own name and address
    assert (REPO / "deploy" / "hosts" / "cp3.toml").read_text() == (
        (REPO / "deploy" / "hosts" / "cp2.toml").read_text().replace("cp2", "cp3")
    ).replace("10.0.0.2", "10.0.0.3")
