"""`homebound lab up | down | status | seed`, also runnable alone as `python -m lab ...`.

Progress goes to stderr so stdout holds only the result (the TOML settings or
JSON), ready to redirect into a file or pipe into `jq`. Problems the operator
can fix (a missing package, a taken port, a server that did not start) are
printed as one message with an exit code of 1, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from lab.orchestrator import Lab, LabError, UpOptions
from lab.settings_toml import render_toml

__all__ = ["main", "register"]

DEFAULT_DIR = Path(".lab")
Handler = Callable[[argparse.Namespace], int]

_stderr = Console(stderr=True, highlight=False)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `lab` and its subcommands to the main CLI; handlers are in `args.run`."""
    parser = subparsers.add_parser(
        "lab", help="run the lab: Samba AD, BIND9 and the Exchange stand-ins",
        description="Run the lab: Samba AD DC, BIND9, and the Exchange Online and on-prem "
                    "Exchange stand-ins, all on 127.0.0.1.",
    )
    add_lab_commands(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__.splitlines()[0])
    add_lab_commands(parser)
    args = parser.parse_args(argv)
    handler: Handler = args.run
    return handler(args)


def add_lab_commands(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="start (or join) every lab server, print the settings")
    _dir_option(up)
    _seed_options(up, required=False)
    up.add_argument("--domain", action="append", dest="domains", metavar="D",
                    help="a custom domain of the tenant (repeatable; the first is the primary, "
                         "its mail.<domain> the on-prem gateway); default fabrikam.example")
    up.add_argument("--fresh", action="store_true", help="stop and remove the previous lab first")
    up.add_argument("--json", action="store_true", help="print JSON instead of homebound.toml")
    for name, default in (("dns", 5353), ("exo", 8443), ("winrm-http", 5985),
                          ("winrm-https", 5986)):
        up.add_argument(f"--{name}-port", type=int, metavar="PORT",
                        help=f"default {default}, or what this lab directory used last")
    up.set_defaults(run=_up)

    down = commands.add_parser("down", help="stop every lab process started in the directory")
    _dir_option(down)
    down.add_argument("--keep-samba", action="store_true",
                      help="leave the Samba AD DC running (a test session shares it)")
    down.set_defaults(run=_down)

    status = commands.add_parser(
        "status", help="what runs, on which ports, and its health (exit code 0: all healthy)")
    _dir_option(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=_status)

    seed = commands.add_parser(
        "seed", help="add mailboxes to the running Exchange Online tenant (POST /lab/seed)")
    _dir_option(seed)
    _seed_options(seed, required=True, minimum=1)
    seed.set_defaults(run=_seed)


def _dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"the lab directory (default {DEFAULT_DIR})")


def _seed_options(parser: argparse.ArgumentParser, *, required: bool, minimum: int = 0) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--mailboxes", type=_count(minimum), metavar="N",
                       help="generate N mailboxes (a new lab's tenant: 50 by default)")
    group.add_argument("--mailboxes-csv", type=Path, metavar="FILE",
                       help="the tenant's mailboxes from a CSV file")


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more")
        return value
    parse.__name__ = "number"  # argparse names the type in "invalid number value"
    return parse


# ---------------------------------------------------------------------- handlers

def _operator_errors(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except LabError as exc:
            _stderr.print(Text("error: ", style="bold red") + Text(str(exc)))
            return 1
        except KeyboardInterrupt:
            _stderr.print(Text("interrupted", style="yellow"))
            return 130
    return run


def _progress(message: str) -> None:
    _stderr.print(Text("lab: ", style="cyan") + Text(message))


@_operator_errors
def _up(args: argparse.Namespace) -> int:
    options = UpOptions(
        domains=args.domains, mailboxes=args.mailboxes, mailboxes_csv=args.mailboxes_csv,
        fresh=args.fresh, dns_port=args.dns_port, exo_port=args.exo_port,
        winrm_http_port=args.winrm_http_port, winrm_https_port=args.winrm_https_port,
    )
    lab = Lab(args.dir, report=_progress)
    try:
        result = lab.up(options)
    except LabError as exc:
        if not any(component.running for component in lab.status()):
            raise
        raise LabError(f"{exc}\n(what did start is still running: `homebound lab down --dir "
                       f"{args.dir}` stops it)") from exc
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        print(render_toml(result.settings), end="")
    return 0


@_operator_errors
def _down(args: argparse.Namespace) -> int:
    stopped = Lab(args.dir).down(keep_samba=args.keep_samba)  # the summary below says it all
    for name, pid in stopped:
        print(f"stopped {name} (pid {pid})")
    if not stopped:
        print(f"nothing of the lab in {args.dir} was running")
    return 0


@_operator_errors
def _status(args: argparse.Namespace) -> int:
    statuses = Lab(args.dir).status()
    if args.json:
        print(json.dumps({s.name: s.as_dict() for s in statuses}, indent=2))
    else:
        table = Table("component", "running", "pid", "ports", "health", title=str(args.dir))
        for s in statuses:
            table.add_row(s.name, "yes" if s.running else "no", str(s.pid or "-"),
                          ", ".join(map(str, s.ports)), Text(s.health))
        Console(highlight=False).print(table)
    healthy = all(s.health in ("ok", "not in this installation") for s in statuses)
    return 0 if healthy else 1


@_operator_errors
def _seed(args: argparse.Namespace) -> int:
    reply = Lab(args.dir, report=_progress).seed(
        mailboxes=args.mailboxes, mailboxes_csv=args.mailboxes_csv)
    print(json.dumps(reply, indent=2))
    return 0
