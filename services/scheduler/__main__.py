"""`python -m services.scheduler`: flags and SFMESH_* variables -> SchedulerConfig -> serve."""

from __future__ import annotations

import argparse
import asyncio

from services.common.config import env, mesh_config
from services.common.main import parse_arguments
from services.scheduler.placement import Policy
from services.scheduler.server import SchedulerConfig, serve_scheduler
from services.scheduler.servicer import Timing


def main() -> None:
    """Parse the configuration and run the scheduler."""
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument(
        "--cpu-overcommit-ratio",
        type=float,
        default=float(env("CPU_OVERCOMMIT_RATIO", "16")),
        help="vCPUs per host CPU (default 16)",
    )
    extra.add_argument(
        "--ram-reserved-mib",
        type=int,
        default=int(env("RAM_RESERVED_MIB", "2048")),
        help="memory kept for the host, MiB (default 2048; 256 on a small machine)",
    )
    extra.add_argument(
        "--min-free-disk-gib",
        type=int,
        default=int(env("MIN_FREE_DISK_GIB", "20")),
        help="disk kept free, GiB (default 20; 1 on a small machine)",
    )
    extra.add_argument(
        "--report-interval",
        type=int,
        default=int(env("REPORT_INTERVAL", "5")),
        help="seconds between node reports, told to node agents (default 5)",
    )
    extra.add_argument(
        "--node-grace",
        type=float,
        default=float(env("NODE_GRACE", "30")),
        help="seconds without a stream before a node is missing (default 30)",
    )
    extra.add_argument(
        "--node-record-interval",
        type=float,
        default=float(env("NODE_RECORD_INTERVAL", "10")),
        help="least seconds between node record writes (default 10)",
    )
    extra.add_argument(
        "--reservation-ttl",
        type=float,
        default=float(env("RESERVATION_TTL", "120")),
        help="seconds a reservation lives unless the node reports the instance (default 120)",
    )
    args = parse_arguments("scheduler", listen="127.0.0.1:13011", extra=extra)
    config = SchedulerConfig(
        mesh=mesh_config(args),
        listen=args.listen,
        policy=Policy(
            cpu_overcommit_ratio=args.cpu_overcommit_ratio,
            ram_reserved_mib=args.ram_reserved_mib,
            min_free_disk_gib=args.min_free_disk_gib,
        ),
        timing=Timing(
            report_interval=args.report_interval,
            node_grace=args.node_grace,
            record_interval=args.node_record_interval,
        ),
        reservation_ttl=args.reservation_ttl,
    )
    asyncio.run(serve_scheduler(config))


if __name__ == "__main__":
    main()
