"""`python -m services.api`: flags and SFMESH_* variables -> ApiConfig -> serve."""

from __future__ import annotations

import argparse
import asyncio

from services.api.server import ApiConfig, serve_api
from services.api.validation import Limits
from services.common.config import add_mesh_arguments, env, mesh_config
from services.common.logs import configure_logging


def main() -> None:
    """Parse the configuration and run the api."""
    parser = argparse.ArgumentParser(prog="python -m services.api", description=__doc__)
    add_mesh_arguments(parser)
    parser.add_argument("--listen", default=env("API_LISTEN", "127.0.0.1:13010"))
    parser.add_argument("--max-cpus", type=int, default=int(env("MAX_CPUS", "16")))
    parser.add_argument("--token-ttl", type=int, default=int(env("TOKEN_TTL", "900")))
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"))
    args = parser.parse_args()
    configure_logging("api", args.log_level)
    config = ApiConfig(
        mesh=mesh_config(args),
        listen=args.listen,
        limits=Limits(max_cpus=args.max_cpus),
        token_ttl_seconds=args.token_ttl,
    )
    asyncio.run(serve_api(config))


if __name__ == "__main__":
    main()
