"""`python -m services.eventlog`: flags and SFMESH_* variables -> EventLogConfig -> serve."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from services.common.config import env, mesh_config
from services.common.main import parse_arguments
from services.eventlog import retention
from services.eventlog.server import EventLogConfig, serve_eventlog


def main() -> None:
    """Parse the configuration and run the eventlog."""
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument(
        "--database",
        default=env("EVENTLOG_DATABASE", ""),
        help="the SQLite file (default <state>/eventlog/events.db)",
    )
    extra.add_argument(
        "--retention",
        default=env("EVENTLOG_RETENTION", ""),
        help="days to keep per type, e.g. 'status=7,usage=30' (-1 keeps forever)",
    )
    extra.add_argument(
        "--prune-interval", type=float, default=float(env("EVENTLOG_PRUNE_INTERVAL", "3600"))
    )
    args = parse_arguments("eventlog", listen="127.0.0.1:13012", extra=extra)
    mesh = mesh_config(args)
    config = EventLogConfig(
        mesh=mesh,
        listen=args.listen,
        database=Path(args.database or mesh.state_dir / "eventlog" / "events.db"),
        retention=retention.parse_overrides(args.retention),
        prune_interval=args.prune_interval,
    )
    asyncio.run(serve_eventlog(config))


if __name__ == "__main__":
    main()
