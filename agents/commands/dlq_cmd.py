"""`homebound dlq list | replay`: what failed, and bringing it back once fixed."""

from __future__ import annotations

import argparse
import getpass

from rich.table import Table

from agents.commands.common import CommandError, config_from, err, out, print_json
from agents.runtime.runner import amqp_settings
from contracts.topology import Agent
from events.replay import Selection, list_dead_letters, replay

AGENTS = [agent.value for agent in Agent]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("dlq", help="inspect and replay dead-lettered messages")
    sub = parser.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="show what sits in the dead-letter queues")
    listing.add_argument("--agent", action="append", choices=AGENTS, help="only this agent (repeatable)")
    listing.add_argument("--json", action="store_true", help="one JSON object per dead letter")
    listing.set_defaults(run=run_list)
    again = sub.add_parser(
        "replay", help="send dead letters back to their agent once the cause is fixed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Re-publish selected dead letters to their agent's work queue with their\n"
            "original event id. For a mailbox, `mailbox.replayed` is published first so\n"
            "its state returns to where it was before the failed step.\n\n"
            "examples:\n"
            "  homebound dlq replay --mailbox ann@fabrikam.example\n"
            "  homebound dlq replay --wave w-20261204-1a2b --error-class transient\n"
            "  homebound dlq replay --all --dry-run\n"
        ),
    )
    again.add_argument("--mailbox", help="primary SMTP address or ExchangeGuid")
    again.add_argument("--wave", help="wave id")
    again.add_argument("--error-class", choices=["transient", "permanent", "needs-human", "invalid",
                                                 "invalid-transition"])
    again.add_argument("--agent", action="append", choices=AGENTS, help="only this agent's queue")
    again.add_argument("--all", action="store_true", help="replay everything (no other selector)")
    again.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    again.set_defaults(run=run_replay)


def run_list(args: argparse.Namespace) -> int:
    config = config_from(args)
    letters = list_dead_letters(amqp_settings(config, "homebound dlq list"), args.agent or AGENTS)
    if args.json:
        for letter in letters:
            print_json(letter.__dict__)
        return 0
    if not letters:
        out.print("the dead-letter queues are empty")
        return 0
    table = Table("agent", "mailbox", "wave", "class", "step", "attempts", "reason", show_lines=False)
    for letter in letters:
        table.add_row(letter.consumer, letter.address or letter.mailbox_id or "-", letter.wave_id or "-",
                      letter.error_class, letter.step or "-", str(letter.attempts), letter.reason[:160])
    out.print(table)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    selection = Selection(mailbox=args.mailbox, wave=args.wave, error_class=args.error_class)
    if selection.is_empty and not args.all:
        raise CommandError("say what to replay: --mailbox, --wave, --error-class, or --all", code=2)
    config = config_from(args)
    replayed = replay(amqp_settings(config, "homebound dlq replay"), args.agent or AGENTS, selection,
                      requested_by=getpass.getuser(), dry_run=args.dry_run)
    verb = "would replay" if args.dry_run else "replayed"
    if not replayed:
        err.print("nothing in the dead-letter queues matches")
        return 1
    for letter in replayed:
        out.print(f"{verb} {letter.event_type} for {letter.address or letter.mailbox_id or letter.event_id} "
                  f"to {letter.consumer} (was: {letter.error_class}: {letter.reason[:120]})")
    return 0
