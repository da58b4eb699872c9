"""`python -m services.scheduler`: flags and SFMESH_* variables -> SchedulerConfig -> serve."""

from __future__ import annotations

import asyncio

from services.common.config import mesh_config, split_address
from services.common.main import parse_arguments
from services.common.settings import Setting
from services.scheduler.node_records import Timing
from services.scheduler.placement import Policy
from services.scheduler.server import SchedulerConfig, serve_scheduler

SETTINGS = (
    Setting(
        "--advertise",
        "",
        "host:port other services dial to reach this scheduler, unique to it; "
        "empty for the listen address",
        variable="SCHEDULER_ADVERTISE",
    ),
    Setting("--cpu-overcommit-ratio", Policy.cpu_overcommit_ratio, "vCPUs per host CPU", float),
    Setting(
        "--ram-reserved-mib",
        Policy.ram_reserved_mib,
        "memory kept for the host, MiB",
        int,
    ),
    Setting("--min-free-disk-gib", Policy.min_free_disk_gib, "disk kept free, GiB", int),
    Setting(
        "--report-interval",
        Timing.report_interval,
        "seconds between node reports, told to node agents",
        int,
    ),
    Setting(
        "--node-record-interval",
        Timing.record_interval,
        "least seconds between node record writes",
        float,
    ),
    Setting(
        "--reservation-ttl",
        120.0,
        "seconds a reservation lives unless the node reports the instance",
        float,
    ),
)

UNSPECIFIED = frozenset({"0.0.0.0", "::", "[::]"})
"""Listen hosts that name no address another host could dial."""


def main() -> None:
    """Parse the configuration and run the scheduler."""
    args = parse_arguments("scheduler", listen="127.0.0.1:13011", settings=SETTINGS)
    advertise = args.advertise or args.listen
    if split_address(advertise)[0] in UNSPECIFIED:
        raise SystemExit(f"listening on {args.listen}: say where others reach it (--advertise)")
    config = SchedulerConfig(
        mesh=mesh_config(args),
        listen=args.listen,
        advertise=advertise,
        policy=Policy(
            cpu_overcommit_ratio=args.cpu_overcommit_ratio,
            ram_reserved_mib=args.ram_reserved_mib,
            min_free_disk_gib=args.min_free_disk_gib,
        ),
        timing=Timing(
            report_interval=args.report_interval,
            record_interval=args.node_record_interval,
        ),
        reservation_ttl=args.reservation_ttl,
    )
    asyncio.run(serve_scheduler(config))


if __name__ == "__main__":
    main()
