"""`homebound config check`: is the configuration usable, section by section?"""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.commands.common import err, out
from agents.runtime.config import SECTIONS, ConfigError, HomeboundConfig, load_config

# Which agent needs which section, to say why a missing one matters.
NEEDED_BY = {
    "exchange_online": "cloud-exporter, migration-monitor",
    "active_directory": "ad-provisioner",
    "onprem_exchange": "exchange-configurator, migration-monitor",
    "gateway": "cloud-exporter, dns-cutover",
    "dns": "dns-cutover",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("config", help="check the configuration")
    sub = parser.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = sub.add_parser(
        "check", help="validate homebound.toml and the environment, section by section",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Reads homebound.toml (or --config / $HOMEBOUND_CONFIG), applies the\n"
            "HOMEBOUND_<SECTION>_<KEY> environment overrides and reads the secret files,\n"
            "then says for each section whether it is usable and, if not, why.\n\n"
            "With --connect it also opens a connection to each configured system.\n"
            "Exit code: 0 when everything is usable, 2 otherwise."
        ),
    )
    check.add_argument("--connect", action="store_true", help="also test each connection")
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    path: Path | None = args.config
    try:
        config = load_config(path)
    except ConfigError as exc:
        for section, problems in exc.problems.items():
            err.print(f"[red]✗[/red] \\[{section}]")
            for problem in problems:
                err.print(f"    {problem}", markup=False, highlight=False)
        return 2
    report(config)
    if args.connect:
        from agents.commands.connectivity import check_connections

        return 0 if check_connections(config) else 2
    return 0


def report(config: HomeboundConfig) -> None:
    out.print(f"configuration: {config.source or 'defaults and environment only'}")
    for section in SECTIONS:
        value = getattr(config, section)
        if value is None:
            needed = NEEDED_BY.get(section)
            hint = f" (needed by {needed})" if needed else ""
            out.print(f"[yellow]-[/yellow] \\[{section}] not configured{hint}")
        else:
            out.print(f"[green]✓[/green] \\[{section}] ok")
