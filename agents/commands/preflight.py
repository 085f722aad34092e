"""Printing the pre-flight report of `homebound migrate --dry-run`."""

from __future__ import annotations

from rich.table import Table

from agents.commands.common import out, print_json
from agents.operator.preflight import run_checks
from agents.runtime.config import HomeboundConfig
from contracts.events import WaveRequestedData

_MARK = {
    "pass": "[green]pass[/green]",
    "warn": "[yellow]warn[/yellow]",
    "fail": "[red]FAIL[/red]",
    "plan": "[cyan]plan[/cyan]",
}


def run_preflight(
    config: HomeboundConfig,
    wave_id: str,
    request: WaveRequestedData,
    *,
    as_json: bool = False,
    shown: int = 50,
) -> int:
    """Exit code 0 when the wave can start as planned, 1 when a check fails."""
    report = run_checks(config, wave_id, request)
    if as_json:
        print_json(report.as_json())
        return 1 if report.failed else 0
    checks = Table(
        "#",
        "check",
        "result",
        "detail",
        title=f"pre-flight for {wave_id} (dry run)",
        header_style="bold",
        show_lines=False,
    )
    for check in report.checks:
        checks.add_row(str(check.number or ""), check.name, _MARK[check.status], check.detail)
    out.print(checks)
    for system, changes in report.changes.items():
        out.print(f"[bold]{system}[/bold] would change: " + ("nothing" if not changes else ""))
        for change in changes:
            out.print(f"  - {change}", markup=False, highlight=False)
    if report.mailboxes:
        table = Table("mailbox", "account", "on-prem", "problem", title="per mailbox", header_style="bold")
        for plan in sorted(report.mailboxes, key=lambda p: (not p.problem, p.address))[:shown]:
            table.add_row(
                plan.address, plan.account, plan.onprem, f"[red]{plan.problem}[/red]" if plan.problem else ""
            )
        out.print(table)
        if len(report.mailboxes) > shown:
            out.print(f"... and {len(report.mailboxes) - shown} more (use --json for every mailbox)")
    for address in report.not_found[:20]:
        out.print(f"[yellow]not found in the tenant:[/yellow] {address}", highlight=False)
    for reason in report.skipped[:20]:
        out.print(f"[yellow]skipped:[/yellow] {reason}", highlight=False)
    out.print(
        "[red]the wave would not go through as it stands[/red]"
        if report.failed
        else "[green]ready: run the same command without --dry-run[/green]"
    )
    return 1 if report.failed else 0
