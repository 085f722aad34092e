"""Reading what operators give us: mailbox lists, completion policies, wave ids."""

from __future__ import annotations

import csv
import io
import secrets
from datetime import UTC, datetime
from pathlib import Path

from agents.commands.common import CommandError
from contracts.events import Completion, CompletionPolicy
from contracts.fields import is_email_address

__all__ = ["new_wave_id", "parse_completion", "read_mailbox_csv"]

MAX_MAILBOXES = 50_000
_ADDRESS_COLUMNS = ("emailaddress", "primarysmtpaddress", "mail", "address", "userprincipalname")


def new_wave_id() -> str:
    return f"w-{datetime.now(UTC):%Y%m%d-%H%M}-{secrets.token_hex(2)}"


def read_mailbox_csv(path: Path) -> list[str]:
    """The addresses in a CSV (column EmailAddress, as New-MigrationBatch takes it).

    Every bad line is reported at once, by line number; nothing is sent unless
    the whole file is good.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}", code=2) from exc
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path} is not UTF-8 text", code=2) from exc
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise CommandError(f"{path} is empty", code=2)
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(name) for name in _ADDRESS_COLUMNS if name in header), None)
    body_start = 1
    if column is None:
        if len(header) == 1 and is_email_address(rows[0][0].strip()):
            column, body_start = 0, 0  # a bare list of addresses without a header
        else:
            raise CommandError(
                f"{path}: no address column; name one of: EmailAddress, PrimarySmtpAddress", code=2
            )
    addresses: dict[str, str] = {}
    problems: list[str] = []
    for number, row in enumerate(rows[body_start:], start=body_start + 1):
        if not any(cell.strip() for cell in row):
            continue
        value = row[column].strip() if column < len(row) else ""
        if not is_email_address(value):
            problems.append(f"line {number}: {value[:80]!r} is not an e-mail address")
            continue
        addresses.setdefault(value.lower(), value)
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise CommandError(f"{path} has {len(problems)} bad line(s):\n  {shown}{more}", code=2)
    if not addresses:
        raise CommandError(f"{path} lists no mailboxes", code=2)
    if len(addresses) > MAX_MAILBOXES:
        raise CommandError(
            f"{path} lists {len(addresses)} mailboxes; a wave takes at most "
            f"{MAX_MAILBOXES}: split it into several waves",
            code=2,
        )
    return list(addresses.values())


def parse_completion(text: str) -> Completion:
    """`auto`, `manual` or `after=<ISO time>` (local time unless it names a zone)."""
    if text in ("auto", "manual"):
        return Completion(policy=CompletionPolicy(text))
    if text.startswith("after="):
        raw = text.removeprefix("after=")
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError as exc:
            raise CommandError(
                f"--completion after=: {raw!r} is not an ISO time like 2026-12-05T22:00", code=2
            ) from exc
        if moment.tzinfo is None:
            moment = moment.astimezone()  # the operator's local time
        if moment <= datetime.now(UTC):
            raise CommandError(f"--completion after=: {raw} is in the past", code=2)
        return Completion(policy=CompletionPolicy.AFTER, after=moment.astimezone(UTC))
    raise CommandError("--completion takes auto, manual or after=<ISO time>", code=2)
