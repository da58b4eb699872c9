"""`python -m services.api_gateway`: flags and SFMESH_* variables -> GatewayConfig -> serve."""

from __future__ import annotations

import argparse
import logging
import os

import uvloop

from services.api_gateway.config import GatewayConfig
from services.api_gateway.server import serve


def parse_config(argv: list[str] | None = None) -> GatewayConfig:
    """Flags override environment variables, which override defaults."""
    env = os.environ
    defaults = GatewayConfig()
    parser = argparse.ArgumentParser(prog="python -m services.api_gateway", description=__doc__)
    parser.add_argument(
        "--api-address", default=env.get("SFMESH_API_ADDRESS", defaults.api_address)
    )
    parser.add_argument("--host", default=env.get("SFMESH_GATEWAY_HOST", defaults.host))
    parser.add_argument(
        "--port", type=int, default=int(env.get("SFMESH_GATEWAY_PORT", defaults.port))
    )
    parser.add_argument(
        "--max-body", type=int, default=int(env.get("SFMESH_GATEWAY_MAX_BODY", defaults.max_body))
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=float(env.get("SFMESH_GATEWAY_DEADLINE", defaults.deadline)),
    )
    parser.add_argument(
        "--head-timeout",
        type=float,
        default=float(env.get("SFMESH_GATEWAY_HEAD_TIMEOUT", defaults.head_timeout)),
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=float(env.get("SFMESH_GATEWAY_BODY_TIMEOUT", defaults.body_timeout)),
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=int(env.get("SFMESH_GATEWAY_MAX_CONNECTIONS", defaults.max_connections)),
    )
    args = parser.parse_args(argv)
    return GatewayConfig(
        api_address=args.api_address,
        host=args.host,
        port=args.port,
        max_body=args.max_body,
        deadline=args.deadline,
        head_timeout=args.head_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
    )


def main() -> None:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # uvloop: measured faster than asyncio's loop for the gateway (bench/gateway.py).
    uvloop.run(serve(parse_config()))


if __name__ == "__main__":
    main()
