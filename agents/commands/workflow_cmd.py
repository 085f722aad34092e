"""`homebound migrate`, `complete` and `status`: starting, finishing and watching waves."""

from __future__ import annotations

import argparse
import getpass
import threading
import time
from typing import Any

from rich.live import Live

from agents.commands.common import CommandError, config_from, err, out, print_json
from agents.commands.waves import new_wave_id, parse_completion, read_mailbox_csv
from agents.operator.display import render_wave, summary_dict
from agents.operator.wave_view import WavesView
from agents.runtime.runner import amqp_settings
from contracts.envelope import new_event
from contracts.events import (
    MailEnableMode,
    MoveMode,
    WaveCompletionRequested,
    WaveCompletionRequestedData,
    WaveRequested,
    WaveRequestedData,
)
from contracts.fields import WaveId
from events.audit import tail_audit
from events.publisher import Publisher

MIGRATE_HELP = """\
Start a wave: every agent takes its part from the `wave.requested` event this
publishes. The command prints the wave id and returns; watch it with
`homebound status --wave <id> --watch`.

examples:
  homebound migrate --domain fabrikam.example --all
  homebound migrate --domain fabrikam.example --mailboxes-csv wave1.csv \\
      --target-database DB01 --target-database DB02 --completion manual
  homebound migrate --domain fabrikam.example --all --dry-run   # check, change nothing

The CSV needs an EmailAddress column (as New-MigrationBatch takes it).
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = subparsers.add_parser(
        "migrate",
        help="start a wave of mailbox moves",
        description=MIGRATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    migrate.add_argument(
        "--domain",
        action="append",
        required=True,
        metavar="D",
        help="the mail domain being brought home (repeatable)",
    )
    scope = migrate.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all", action="store_true", help="every mailbox with an address in the domains")
    scope.add_argument(
        "--mailboxes-csv",
        type=argparse.FileType("rb"),
        metavar="FILE",
        help="only the mailboxes listed (column EmailAddress)",
    )
    migrate.add_argument(
        "--target-database",
        action="append",
        default=[],
        metavar="DB",
        help="on-prem mailbox database(s) (default: [onprem_exchange] target_databases)",
    )
    migrate.add_argument("--target-archive-database", action="append", default=[], metavar="DB")
    migrate.add_argument(
        "--completion",
        default="auto",
        metavar="POLICY",
        help="auto (default), manual (homebound complete), or after=<ISO time>",
    )
    migrate.add_argument(
        "--move-mode",
        choices=[m.value for m in MoveMode],
        default=None,
        help="migration batches (default) or one New-MoveRequest -Outbound per mailbox",
    )
    migrate.add_argument(
        "--mail-enable-mode",
        choices=[m.value for m in MailEnableMode],
        default=None,
        help="mail-user (default, no hybrid) or remote-mailbox (hybrid shops)",
    )
    migrate.add_argument(
        "--allow-partial", action="store_true", help="switch MX even if some mailboxes failed"
    )
    migrate.add_argument("--wave-id", metavar="ID", help="name the wave (default: w-<date>-<random>)")
    migrate.add_argument(
        "--dry-run", action="store_true", help="run the pre-flight checks and print the plan; change nothing"
    )
    migrate.add_argument("--json", action="store_true", help="print the result as JSON")
    migrate.set_defaults(run=run_migrate)

    complete = subparsers.add_parser(
        "complete",
        help="complete synced moves of a wave (manual completion)",
        description="Finish the moves of a wave started with --completion manual: mailboxes that "
        "are synced complete now, the others as soon as they are synced.",
    )
    complete.add_argument("--wave", required=True)
    complete.add_argument(
        "--mailbox",
        action="append",
        metavar="ADDRESS",
        help="only this mailbox (repeatable); default: the whole wave",
    )
    complete.set_defaults(run=run_complete)

    status = subparsers.add_parser(
        "status",
        help="where each wave and its mailboxes stand",
        description="Folds the audit stream into a picture of each wave: states, failures with "
        "their reasons, MX before and after.",
    )
    status.add_argument("--wave", help="one wave (default: all)")
    status.add_argument("--watch", action="store_true", help="keep the picture live")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=run_status)


def _publisher(args: argparse.Namespace, name: str) -> tuple[Publisher, Any]:
    config = config_from(args)
    publisher = Publisher(amqp_settings(config, name), connect_timeout=15)
    try:
        publisher.start()
    except Exception as exc:
        raise CommandError(f"cannot reach RabbitMQ at {config.amqp.url.split('@')[-1]}: {exc}") from exc
    return publisher, config


def run_migrate(args: argparse.Namespace) -> int:
    mailboxes = None
    if args.mailboxes_csv is not None:
        from pathlib import Path

        name = Path(args.mailboxes_csv.name)
        args.mailboxes_csv.close()
        mailboxes = read_mailbox_csv(name)
    completion = parse_completion(args.completion)
    wave_id = args.wave_id or new_wave_id()
    try:
        WaveRequestedData.model_validate({"domains": args.domain})
        from pydantic import TypeAdapter

        TypeAdapter(WaveId).validate_python(wave_id)
    except Exception as exc:
        raise CommandError(f"invalid input: {exc}", code=2) from exc
    config = config_from(args)
    onprem = config.onprem_exchange
    data = WaveRequestedData(
        domains=args.domain,
        mailboxes=mailboxes,
        target_databases=args.target_database or (list(onprem.target_databases) if onprem else []),
        target_archive_databases=args.target_archive_database,
        completion=completion,
        move_mode=MoveMode(args.move_mode) if args.move_mode else config.migration.move_mode,
        mail_enable_mode=MailEnableMode(args.mail_enable_mode)
        if args.mail_enable_mode
        else (onprem.mail_enable_mode if onprem else MailEnableMode.MAIL_USER),
        allow_partial_cutover=args.allow_partial,
        requested_by=getpass.getuser()[:256],
    )
    if args.dry_run:
        from agents.commands.preflight import run_preflight

        return run_preflight(config, wave_id, data, as_json=args.json)
    publisher, _ = _publisher(args, "homebound migrate")
    with publisher:
        event = new_event(WaveRequested, wave_id=wave_id, producer="cli", data=data)
        publisher.publish_events([event])
    scope = (
        f"{len(mailboxes)} listed mailboxes" if mailboxes else "every mailbox in " + ", ".join(args.domain)
    )
    if args.json:
        print_json({"wave": wave_id, "event_id": str(event.event_id), "scope": scope})
    else:
        out.print(wave_id, highlight=False)
        err.print(f"wave {wave_id} requested for {scope}")
        err.print(f"watch it:  homebound status --wave {wave_id} --watch")
    return 0


def run_complete(args: argparse.Namespace) -> int:
    publisher, _ = _publisher(args, "homebound complete")
    with publisher:
        data = WaveCompletionRequestedData(mailboxes=args.mailbox, requested_by=getpass.getuser()[:256])
        publisher.publish_events(
            [new_event(WaveCompletionRequested, wave_id=args.wave, producer="cli", data=data)]
        )
    what = ", ".join(args.mailbox) if args.mailbox else "every mailbox"
    err.print(f"completion requested for {what} of wave {args.wave}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    config = config_from(args)
    settings = amqp_settings(config, "homebound status")
    view = WavesView(args.wave)
    started = time.monotonic()
    if not args.watch:
        tail_audit(settings, lambda doc, _o: _fold(view, doc), offset="first")
        waves = list(view.waves.values())
        if args.wave and not waves:
            raise CommandError(f"no events for wave {args.wave} in the audit stream")
        if args.json:
            for wave in waves:
                print_json(summary_dict(wave, seconds=0))
        else:
            for wave in waves:
                out.print(render_wave(wave))
        return 0
    if not args.wave:
        raise CommandError("--watch needs --wave", code=2)
    stop = threading.Event()
    with Live(refresh_per_second=4, console=out) as live:

        def update(doc: dict[str, Any], _offset: int) -> bool:
            wave = view.apply_document(doc)
            if wave is not None:
                live.update(render_wave(wave, elapsed=time.monotonic() - started))
            return False

        try:
            tail_audit(settings, update, offset="first", follow=True, stop=stop)
        except KeyboardInterrupt:
            stop.set()
    return 0


def _fold(view: WavesView, document: dict[str, Any]) -> None:
    view.apply_document(document)
