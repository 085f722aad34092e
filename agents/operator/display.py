"""Rendering a wave for people: a progress table and a summary (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from agents.operator.wave_view import WaveView
from contracts.states import MailboxState

__all__ = ["STATE_ORDER", "render_wave", "summary_dict"]

STATE_ORDER = [
    s.value
    for s in (
        MailboxState.DISCOVERED,
        MailboxState.PROVISIONED,
        MailboxState.MAIL_ENABLED,
        MailboxState.MOVE_REQUESTED,
        MailboxState.SYNCING,
        MailboxState.SYNCED,
        MailboxState.COMPLETING,
        MailboxState.COMPLETED,
        MailboxState.FAILED,
    )
]


def _mx(records: dict[str, Any] | None) -> str:
    if not records:
        return "-"
    return ", ".join(f"{pref} {host}" for pref, host in records.get("mx", [])) or "-"


def render_wave(view: WaveView, *, elapsed: float | None = None, max_failures: int = 8) -> Panel:
    counts = view.counts()
    total = view.expected if view.expected is not None else len(view.mailboxes)
    done = counts.get("completed", 0)
    head = Table.grid(padding=(0, 2))
    head.add_row("wave", view.wave_id, "phase", (view.phase.value if view.phase else "-"))
    head.add_row(
        "mailboxes",
        f"{total}" + ("" if view.expected is not None else " (export running)"),
        "completed",
        f"{done}/{total}",
    )
    if elapsed is not None:
        head.add_row("elapsed", f"{elapsed:,.1f} s", "MX", _mx(view.dns_after or view.dns_before))
    states = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
    states.add_column("state")
    states.add_column("mailboxes", justify="right")
    states.add_column("", width=40)
    for state in STATE_ORDER:
        n = counts.get(state, 0)
        bar = ProgressBar(
            total=max(total, 1), completed=n, width=40, complete_style="red" if state == "failed" else "green"
        )
        states.add_row(state, str(n), bar)
    parts: list[Any] = [head, Text(""), states]
    failures = view.failures
    if failures:
        rows = Table("mailbox", "step", "class", "reason", box=None, padding=(0, 1), header_style="bold red")
        for failed in failures[:max_failures]:
            failure = failed.failure or {}
            rows.add_row(
                failed.address or failed.mailbox_id,
                str(failure.get("step", "-")),
                str(failure.get("error_class", "-")),
                str(failure.get("reason", ""))[:100],
            )
        if len(failures) > max_failures:
            rows.add_row(f"... and {len(failures) - max_failures} more", "", "", "")
        parts += [Text(""), rows]
    if view.blocked:
        parts += [Text(f"blocked at {view.blocked.get('step')}: {view.blocked.get('reason')}", style="red")]
    return Panel(Group(*parts), title="Homebound", expand=False)


def summary_dict(view: WaveView, *, seconds: float) -> dict[str, Any]:
    counts = view.counts()
    return {
        "wave": view.wave_id,
        "mailboxes": view.expected if view.expected is not None else len(view.mailboxes),
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
        "states": dict(counts),
        "failures": [{"mailbox": f.address or f.mailbox_id, **(f.failure or {})} for f in view.failures],
        "mx_before": _mx(view.dns_before),
        "mx_after": _mx(view.dns_after),
        "phase": view.phase.value if view.phase else None,
        "seconds": round(seconds, 1),
    }
