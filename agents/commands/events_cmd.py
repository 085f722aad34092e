"""`homebound events tail`: the audit stream, live or from any point in time."""

from __future__ import annotations

import argparse
from typing import Any

from agents.commands.common import config_from, out, print_json
from agents.runtime.runner import amqp_settings
from events.audit import tail_audit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("events", help="read the audit stream of every event")
    sub = parser.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    tail = sub.add_parser(
        "tail", help="print events from the audit stream",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Print events kept in the audit stream (homebound.audit).\n\n"
            "examples:\n"
            "  homebound events tail --from first            everything kept\n"
            "  homebound events tail --from 30m --follow     the last half hour, then live\n"
            "  homebound events tail --wave w-20261204-1a2b --mailbox ann@fabrikam.example\n"
        ),
    )
    tail.add_argument("--from", dest="offset", default="first",
                      help="first, last, next, an offset number, or an interval like 30m, 2h, 1D")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    tail.add_argument("--wave", help="only events of this wave")
    tail.add_argument("--mailbox", help="only events about this mailbox (address or ExchangeGuid)")
    tail.add_argument("--type", dest="types", action="append",
                      help="only this event type (repeatable; a prefix like 'wave.' works)")
    tail.add_argument("--json", action="store_true", help="one JSON event per line")
    tail.set_defaults(run=run_tail)


def _matches(event: dict[str, Any], args: argparse.Namespace) -> bool:
    if args.wave and event.get("wave_id") != args.wave:
        return False
    if args.types and not any(str(event.get("type", "")).startswith(t) for t in args.types):
        return False
    if args.mailbox:
        wanted = args.mailbox.lower()
        mailbox = _mailbox_part(event)
        candidates = {str(event.get("mailbox_id", "")).lower(),
                      str(mailbox.get("primary_smtp_address", "")).lower()}
        if wanted not in candidates:
            return False
    return True


def _mailbox_part(event: dict[str, Any]) -> dict[str, Any]:
    """The mailbox record of an event: `data`, or `data.mailbox` for later steps."""
    data = event.get("data")
    if not isinstance(data, dict):
        return {}
    inner = data.get("mailbox")
    return inner if isinstance(inner, dict) else data


def _one_line(event: dict[str, Any]) -> str:
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    mailbox = _mailbox_part(event)
    who = mailbox.get("primary_smtp_address") or event.get("mailbox_id") or ""
    detail = ""
    if event.get("type") in ("mailbox.syncing", "mailbox.synced"):
        detail = f"{data.get('percent')}% {data.get('status', '')}"
    elif event.get("type", "").endswith(".failed"):
        detail = f"{data.get('error_class')} at {data.get('step')}: {str(data.get('reason', ''))[:120]}"
    elif event.get("type") == "wave.exported":
        detail = f"{data.get('count')} mailboxes"
    when = str(event.get("occurred_at", ""))[:19]
    return f"{when}  {event.get('wave_id', ''):<22} {event.get('type', ''):<24} {who} {detail}".rstrip()


def run_tail(args: argparse.Namespace) -> int:
    config = config_from(args)
    offset: str | int = int(args.offset) if str(args.offset).isdigit() else args.offset

    def show(event: dict[str, Any], _offset: int) -> None:
        if not _matches(event, args):
            return
        if args.json:
            print_json(event)
        else:
            out.print(_one_line(event), markup=False, highlight=False)

    tail_audit(amqp_settings(config, "homebound events tail"), show, offset=offset, follow=args.follow)
    return 0
