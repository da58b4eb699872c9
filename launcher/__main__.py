"""`python -m launcher --config FILE`: run this host's share of the mesh.

Without `--role`, every role of the host runs as a child of this process,
in the foreground, until SIGTERM or Ctrl-C (or until one exits: then the
host stops, exit status 1). With `--role X`, the launcher checks the config
and X's ports, then becomes X (exec): what a systemd unit runs, so systemd
supervises each role itself. `--check` prints what would run (with
`--role`, what that role would exec) and exits.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from launcher.commands import command, environment, ignored_variables
from launcher.config import ConfigError, HostConfig, bindings, load_config
from launcher.host import Host, stop_on_signals, supervise
from launcher.ports import CannotListen, check_ports
from launcher.processes import NotReady
from launcher.roles import ROLES


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, check the config, run what it says."""
    parser = argparse.ArgumentParser(prog="python -m launcher", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="this host's config (TOML)")
    parser.add_argument("--role", choices=list(ROLES), help="run only this role, in this process")
    parser.add_argument(
        "--check", action="store_true", help="print what would run (of --role: that), start nothing"
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, hostname=socket.gethostname())
    except ConfigError as exc:
        lines = "\n".join(f"  {problem}" for problem in exc.problems)
        print(f"sfmesh: {args.config}: nothing started:\n{lines}", file=sys.stderr)
        return 2
    if args.role and args.role not in config.roles:
        print(f"sfmesh: --role {args.role}: host.roles does not list it", file=sys.stderr)
        return 2
    if args.check:
        print(plan(config, [args.role] if args.role else config.roles))
        return 0
    ignored = ignored_variables(os.environ)
    if ignored:
        print(
            f"sfmesh: ignoring {', '.join(ignored)}: {args.config} sets this host", file=sys.stderr
        )
    if args.role:
        return become(config, args.role)
    return run(config)


def run(config: HostConfig) -> int:
    """Every role of the host as children, until a signal or a child's exit."""
    stop = stop_on_signals()
    host = Host(config, sink=sys.stdout)
    try:
        host.start()
    except CannotListen as exc:
        print(f"sfmesh: {exc}; nothing started", file=sys.stderr)
        return 1
    except NotReady as exc:
        print(f"sfmesh: {exc}; stopped this host", file=sys.stderr)
        return 1
    print(f"sfmesh: host {config.name} is up: {', '.join(config.roles)}", flush=True)
    for role in config.roles:
        print(f"  {role + ':':<12}{config.listen(role)}", flush=True)
    for role, url in config.metrics_urls().items():
        print(f"  {role + ' metrics:':<20}{url}", flush=True)
    try:
        return supervise(host, stop)
    finally:
        print("sfmesh: stopping", flush=True)
        host.stop()


def become(config: HostConfig, role: str) -> int:
    """Check `role`'s ports and exec it in this process; returns only on a refusal."""
    try:
        check_ports(bindings(config, [role]))
    except CannotListen as exc:
        print(f"sfmesh: {exc}; {role} not started", file=sys.stderr)
        return 1
    if ROLES[role].stateful:
        config.state_dir.mkdir(parents=True, exist_ok=True)
    argv = command(config, role)
    sys.stdout.flush()
    os.execvpe(argv[0], argv, environment(os.environ))


def plan(config: HostConfig, roles: Sequence[str]) -> str:
    """What this host runs of `roles`: TLS or not, each role, its unit and
    its command line."""
    tls = config.tls
    lines = [
        f"host {config.name}, state {config.state_dir}",
        f"tls: mutual, with the certificates in {tls.folder}"
        if tls
        else "tls: none (plaintext gRPC and HTTP; [tls] dir turns it on)",
    ]
    urls = config.metrics_urls()
    for role in roles:
        lines.append(f"{role} ({ROLES[role].unit}):")
        lines.append("  " + " ".join(command(config, role)))
        if role in urls:
            lines.append(f"  metrics: {urls[role]}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
