"""`python -m services.api`: flags and SFMESH_* variables -> ApiConfig -> serve."""

from __future__ import annotations

import asyncio

from services.api.artifacts.sweeper import SweepSettings
from services.api.instances.agent_purge import PurgeSettings
from services.api.instances.validation import Limits
from services.api.server import ApiConfig, UploadLimits, serve_api
from services.common.config import mesh_config
from services.common.main import parse_arguments
from services.common.settings import Setting, parse_bool

SETTINGS = (
    Setting("--max-cpus", Limits.max_cpus, "the most vCPUs one instance may have", int),
    Setting("--token-ttl", 900, "seconds a user token lives", int),
    Setting(
        "--deleted-retention", 3600.0, "seconds a deleted instance stays readable by UUID", float
    ),
    Setting("--purge-interval", 60.0, "seconds between purge sweeps", float),
    Setting("--max-upload-size", UploadLimits.max_size, "the most bytes one upload may hold", int),
    Setting(
        "--upload-idle",
        UploadLimits.idle,
        "seconds without an append after which an upload is removed",
        float,
    ),
    Setting(
        "--upload-sweep-interval",
        UploadLimits.sweep_interval,
        "seconds between sweeps of abandoned uploads",
        float,
    ),
    Setting(
        "--hard-delete-delay",
        SweepSettings.hard_delete_delay,
        "seconds a deleted artifact or blob stays readable before its record is removed",
        float,
    ),
    Setting(
        "--blob-delete-grace",
        SweepSettings.blob_delete_grace,
        "the node agents' grace for files of deleted blobs (the same variable as theirs):"
        " a blob's record is removed no sooner after its deletion",
        float,
    ),
    Setting(
        "--artifact-sweep-interval",
        SweepSettings.interval,
        "seconds between sweeps of deleted artifacts and blobs",
        float,
    ),
    Setting(
        "--agent-operation-delete-delay",
        PurgeSettings.delay,
        "seconds an agent operation, or its instance, stays deleted before the operation's"
        " record is removed (at once when the instance's record is gone)",
        float,
    ),
    Setting(
        "--agent-operation-purge-interval",
        PurgeSettings.interval,
        "seconds between sweeps of agent-operation records",
        float,
    ),
    Setting(
        "--snapshots-default-to-thin",
        ApiConfig.snapshots_default_to_thin,
        "whether a snapshot request without `thin` copies only disks' own layers",
        parse_bool,
    ),
    Setting(
        "--console-ticket-ttl",
        ApiConfig.console_ticket_ttl,
        "seconds a browser console ticket lives at most (and by default): the session it"
        " opens ends then",
        int,
    ),
)


def main() -> None:
    """Parse the configuration and run the api."""
    args = parse_arguments("api", listen="127.0.0.1:13010", settings=SETTINGS)
    config = ApiConfig(
        mesh=mesh_config(args),
        listen=args.listen,
        limits=Limits(max_cpus=args.max_cpus),
        token_ttl_seconds=args.token_ttl,
        deleted_retention=args.deleted_retention,
        purge_interval=args.purge_interval,
        uploads=UploadLimits(
            max_size=args.max_upload_size,
            idle=args.upload_idle,
            sweep_interval=args.upload_sweep_interval,
        ),
        artifact_sweep=SweepSettings(
            hard_delete_delay=args.hard_delete_delay,
            blob_delete_grace=args.blob_delete_grace,
            interval=args.artifact_sweep_interval,
        ),
        snapshots_default_to_thin=args.snapshots_default_to_thin,
        console_ticket_ttl=args.console_ticket_ttl,
        agent_operation_purge=PurgeSettings(
            delay=args.agent_operation_delete_delay,
            interval=args.agent_operation_purge_interval,
        ),
    )
    asyncio.run(serve_api(config))


if __name__ == "__main__":
    main()
