"""The agent test guest: the tiny Linux test guest plus the real Shaken Fist
in-guest agent, built on demand.

`ensure_agent_guest(build_dir)` returns `build_dir / "agentguest.raw"`: the
test guest of ``guests/testguest`` (same kernel, busybox init, markers), to
which ``guests/agentguest/variant.sh`` adds Debian 12's python3.11 and the
`shakenfist-agent` 0.3.18 wheels from PyPI (pinned with their hashes in
``guests/agentguest/requirements.txt``). Once ``/etc/rc.boot`` is done,
busybox init runs ``/etc/rc.agent``, which links
``/dev/virtio-ports/sf-agent`` and starts ``sf-agent daemon run``; it is
started again whenever it exits. Extra console markers::

    AGENTGUEST PORT name=sf-agent dev=vport0p1
    AGENTGUEST AGENT start t=7.16

The build is cached as the test guest's is (a stamp of the sources' hash,
those of both folders), and needs PyPI besides the Debian mirror: the
wheels are fetched with this Python's pip.
"""

from __future__ import annotations

import sys
from pathlib import Path

from guests.testguest import ensure_guest

VARIANT_DIR = Path(__file__).resolve().parent / "agentguest"
IMAGE_NAME = "agentguest.raw"


def ensure_agent_guest(build_dir: Path) -> Path:
    """Return `build_dir / "agentguest.raw"`, building it first when it is
    missing or older than guests/testguest/ and guests/agentguest/.

    Blocks while another thread or process builds it, then uses its result.
    Raises `guests.testguest.GuestBuildError` when the build fails.
    """
    return ensure_guest(
        build_dir,
        IMAGE_NAME,
        variant_dir=VARIANT_DIR,
        env={"SFMESH_GUEST_PYTHON": sys.executable},
    )
