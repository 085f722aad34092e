"""The `homebound` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Protocol

from agents import __version__
from agents.commands import (
    agent_cmd,
    config_cmd,
    contracts_cmd,
    demo_cmd,
    dlq_cmd,
    dns_cmd,
    events_cmd,
    rabbitmq_cmd,
    workflow_cmd,
)
from agents.commands.common import CommandError, err
from agents.runtime.config import ConfigError
from agents.runtime.logging import configure_logging

EPILOG = """\
a first run:
  homebound lab up --mailboxes 50 > homebound.toml   start the lab, write its settings
  homebound demo                                      migrate the lab tenant end to end

configuration:
  homebound.toml in the current directory, or --config FILE, or $HOMEBOUND_CONFIG;
  HOMEBOUND_<SECTION>_<KEY> overrides a key, HOMEBOUND_<SECTION>_<KEY>_FILE reads a
  secret from a file. `homebound config check` says what is wrong, section by section.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="homebound",
        description="Move mailboxes from Exchange Online back to on-premises Exchange.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"homebound {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="configuration file (default: ./homebound.toml or $HOMEBOUND_CONFIG)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    return parser


class _Registers(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def _command_modules() -> list[_Registers]:
    from lab import cli as lab_cli

    return [
        workflow_cmd,
        demo_cmd,
        agent_cmd,
        config_cmd,
        contracts_cmd,
        dlq_cmd,
        dns_cmd,
        events_cmd,
        rabbitmq_cmd,
        lab_cli,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    # Commands talk to people: only warnings and errors from the libraries, on stderr.
    # `homebound agent` reconfigures logging for a long-running service.
    configure_logging("debug" if args.debug else "warning", "console")
    try:
        return int(args.run(args))
    except ConfigError as exc:
        err.print("[red]the configuration cannot be used:[/red]")
        for section, problems in exc.problems.items():
            for problem in problems:
                err.print(f"  [{section}] {problem}", markup=False)
        return 2
    except CommandError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return exc.code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        if args.debug or os.environ.get("HOMEBOUND_DEBUG"):
            raise
        err.print(f"[red]error:[/red] {type(exc).__name__}: {str(exc)[:500]}", highlight=False)
        err.print("(run with --debug for the traceback)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
