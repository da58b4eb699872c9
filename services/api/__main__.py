"""`python -m services.api`: flags and SFMESH_* variables -> ApiConfig -> serve."""

from __future__ import annotations

import argparse
import asyncio

from services.api.server import ApiConfig, serve_api
from services.api.validation import Limits
from services.common.config import env, mesh_config
from services.common.main import parse_arguments


def main() -> None:
    """Parse the configuration and run the api."""
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--max-cpus", type=int, default=int(env("MAX_CPUS", "16")))
    extra.add_argument("--token-ttl", type=int, default=int(env("TOKEN_TTL", "900")))
    extra.add_argument(
        "--deleted-retention",
        type=float,
        default=float(env("DELETED_RETENTION", "3600")),
        help="seconds a deleted instance stays readable by UUID",
    )
    extra.add_argument("--purge-interval", type=float, default=float(env("PURGE_INTERVAL", "60")))
    args = parse_arguments("api", listen="127.0.0.1:13010", extra=extra)
    config = ApiConfig(
        mesh=mesh_config(args),
        listen=args.listen,
        limits=Limits(max_cpus=args.max_cpus),
        token_ttl_seconds=args.token_ttl,
        deleted_retention=args.deleted_retention,
        purge_interval=args.purge_interval,
    )
    asyncio.run(serve_api(config))


if __name__ == "__main__":
    main()
