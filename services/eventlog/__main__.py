"""`python -m services.eventlog`: flags and SFMESH_* variables -> EventLogConfig -> serve."""

from __future__ import annotations

import asyncio

from services.common.config import mesh_config
from services.common.main import parse_arguments
from services.common.settings import Setting
from services.eventlog import retention
from services.eventlog.server import EventLogConfig, serve_eventlog

SETTINGS = (
    Setting(
        "--database",
        "",
        "the SQLite file, or a postgresql:// URL of a database replicas share;"
        " empty for <state>/eventlog/events.db",
        variable="EVENTLOG_DATABASE",
    ),
    Setting(
        "--retention",
        "",
        "days to keep per type, e.g. 'status=7,usage=30' (-1 keeps forever)",
        variable="EVENTLOG_RETENTION",
    ),
    Setting(
        "--prune-interval",
        3600.0,
        "seconds between pruning sweeps",
        float,
        variable="EVENTLOG_PRUNE_INTERVAL",
    ),
)


def main() -> None:
    """Parse the configuration and run the eventlog."""
    args = parse_arguments("eventlog", listen="127.0.0.1:13012", settings=SETTINGS)
    mesh = mesh_config(args)
    config = EventLogConfig(
        mesh=mesh,
        listen=args.listen,
        database=args.database or str(mesh.state_dir / "eventlog" / "events.db"),
        retention=retention.parse_overrides(args.retention),
        prune_interval=args.prune_interval,
    )
    asyncio.run(serve_eventlog(config))


if __name__ == "__main__":
    main()
