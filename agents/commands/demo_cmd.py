"""`homebound demo`: a lab tenant migrated end to end by the five agents, live."""

from __future__ import annotations

import argparse
import shutil
import threading
import time
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
from rich.live import Live

from agents.commands.common import CommandError, err, out, print_json
from agents.operator.display import render_wave, summary_dict
from agents.operator.fleet import AgentFleet, FleetError
from agents.operator.wave_view import WavesView, WaveView
from agents.runtime.config import HomeboundConfig, load_config
from agents.runtime.runner import amqp_settings
from contracts.envelope import new_event
from contracts.events import WaveRequested, WaveRequestedData
from contracts.states import WavePhase
from events.admin import BrokerAdmin
from events.audit import tail_audit
from events.publisher import Publisher

DESCRIPTION = """\
Brings up the lab (Samba AD, BIND9, the Exchange Online and on-prem Exchange
stand-ins) with a freshly seeded tenant, starts the five agents as separate
processes, migrates every mailbox of the tenant in one wave with live
progress, switches MX, and prints a summary.

Exit code 0 only when every mailbox completed and MX points on-prem.
Agent logs: <dir>/demo/logs/<agent>.log. The lab is stopped at the end
(only one Samba can run at a time, and the tests need theirs); with
--keep-lab it stays up for a look around:
  homebound --config .lab/demo/homebound.toml status --wave <id>
  homebound --config .lab/demo/homebound.toml dlq list
  homebound lab down --dir .lab
"""

DEMO_VHOST = "homebound-demo"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="migrate a lab tenant end to end, live",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mailboxes", type=int, default=50, metavar="N", help="tenant size (default 50)")
    parser.add_argument("--dir", type=Path, default=Path(".lab"), help="lab directory (default .lab)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line (the summary)")
    parser.add_argument(
        "--timeout", type=float, default=900, metavar="SECONDS", help="give up after this long (default 900)"
    )
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab running afterwards")
    parser.set_defaults(run=run)


def _progress(message: str) -> None:
    err.print(f"[dim]·[/dim] {message}", highlight=False)


def _demo_config(lab_dir: Path, amqp_url: str) -> Path:
    """The lab's settings plus the demo's own broker vhost, state directory and quick retries."""
    from lab.settings_toml import render_toml

    settings = tomllib.loads((lab_dir / "homebound.toml").read_text())
    parsed = urllib.parse.urlparse(amqp_url)
    settings["amqp"]["url"] = urllib.parse.urlunparse(parsed._replace(path="/" + DEMO_VHOST))
    settings["runtime"] = {"state_dir": str(lab_dir / "demo" / "state"), "retry_delays": [2, 10, 60]}
    path = lab_dir / "demo" / "homebound.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(lab_dir / "demo" / "state", ignore_errors=True)  # a fresh ledger for a fresh tenant
    path.write_text(render_toml(settings))
    return path


def _fresh_vhost(config: HomeboundConfig) -> BrokerAdmin:
    parsed = urllib.parse.urlparse(config.amqp.url)
    admin = BrokerAdmin(
        config.amqp.management_url, username=parsed.username or "guest", password=parsed.password or "guest"
    )
    if not admin.has_api:
        raise CommandError(
            "the demo needs the RabbitMQ management API: "
            "rabbitmq-plugins enable rabbitmq_management (make demo does it)"
        )
    admin.delete_vhost(DEMO_VHOST)
    admin.create_vhost(DEMO_VHOST, user=parsed.username or "guest")
    return admin


def _mx_now(config: HomeboundConfig, domain: str) -> str:
    """MX as BIND answers it right now (not as any event says)."""
    assert config.dns is not None
    query = dns.message.make_query(domain, dns.rdatatype.MX)
    answer = dns.query.tcp(query, config.dns.server, port=config.dns.port, timeout=5)
    records = sorted((r.preference, str(r.exchange).rstrip(".")) for rrset in answer.answer for r in rrset)
    return ", ".join(f"{pref} {host}" for pref, host in records)


def run(args: argparse.Namespace) -> int:
    from lab.orchestrator import Lab, LabError, UpOptions

    if args.mailboxes < 1 or args.mailboxes > 20_000:
        raise CommandError("--mailboxes takes 1 to 20000", code=2)
    started = time.monotonic()
    _progress(f"lab: fresh tenant of {args.mailboxes} mailboxes in {args.dir}")
    try:
        Lab(args.dir, report=_progress).up(UpOptions(mailboxes=args.mailboxes, fresh=True))
    except LabError as exc:
        raise CommandError(str(exc)) from exc
    lab_config = load_config(args.dir / "homebound.toml")
    admin = _fresh_vhost(lab_config)
    config_file = _demo_config(args.dir, lab_config.amqp.url)
    config = load_config(config_file)
    domain = config.onprem_exchange.target_delivery_domain if config.onprem_exchange else "fabrikam.example"
    fleet = AgentFleet(config_file, args.dir / "demo" / "logs", DEMO_VHOST, admin)
    _progress(
        "agents: starting cloud-exporter, ad-provisioner, exchange-configurator, "
        "migration-monitor, dns-cutover"
    )
    try:
        fleet.start()
        view, seconds = _run_wave(config, domain, args, started)
    except FleetError as exc:
        raise CommandError(f"an agent did not start: {exc}") from exc
    finally:
        codes = fleet.stop()
        admin.close()
    mx_after = _mx_now(config, domain)
    if not args.keep_lab:
        Lab(args.dir).down()
    summary = summary_dict(view, seconds=seconds)
    summary["mx_after"] = mx_after
    summary["agents_exit_codes"] = codes
    summary["step_seconds"] = _step_times(view)
    ok = summary["completed"] == summary["mailboxes"] and mx_after.endswith(
        config.gateway.host if config.gateway else ""
    )
    _print_summary(summary, ok)
    if args.json:
        print_json(
            {
                k: summary[k]
                for k in ("wave", "mailboxes", "completed", "failed", "mx_before", "mx_after", "seconds")
            }
        )
    return 0 if ok else 1


def _run_wave(
    config: HomeboundConfig, domain: str, args: argparse.Namespace, started: float
) -> tuple[WaveView, float]:
    wave_id = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    settings = amqp_settings(config, "homebound demo")
    with Publisher(settings, connect_timeout=15) as publisher:
        publisher.publish_events(
            [
                new_event(
                    WaveRequested,
                    wave_id=wave_id,
                    producer="cli",
                    data=WaveRequestedData(domains=[domain], requested_by="demo"),
                )
            ]
        )
    _progress(f"wave {wave_id} requested for every mailbox in {domain}")
    views = WavesView(wave_id)
    stop = threading.Event()
    state: dict[str, Any] = {"view": WaveView(wave_id), "settled_at": None}
    wave_started = time.monotonic()

    def finished(view: WaveView) -> bool:
        if view.phase is WavePhase.DONE:
            return True
        if view.migrated and view.migrated.get("failed"):
            settled = float(state["settled_at"] or time.monotonic())
            state["settled_at"] = settled
            return time.monotonic() - settled > 10  # no cutover comes for a partial wave
        return False

    with Live(
        render_wave(state["view"], elapsed=0), refresh_per_second=4, console=err, transient=args.json
    ) as live:

        def on_event(document: dict[str, Any], _offset: int) -> bool:
            view = views.apply_document(document)
            if view is not None:
                state["view"] = view
            elapsed = time.monotonic() - wave_started
            live.update(render_wave(state["view"], elapsed=elapsed))
            return finished(state["view"]) or elapsed > args.timeout

        def watchdog() -> None:
            while not stop.wait(1):
                live.update(render_wave(state["view"], elapsed=time.monotonic() - wave_started))
                if finished(state["view"]) or time.monotonic() - wave_started > args.timeout:
                    stop.set()

        threading.Thread(target=watchdog, daemon=True).start()
        tail_audit(settings, on_event, offset="first", follow=True, stop=stop)
        stop.set()
    return state["view"], time.monotonic() - started


def _step_times(view: WaveView) -> dict[str, float]:
    """Seconds from the wave's first event until the last mailbox reached each state."""
    ordered = sorted(view.reached.items(), key=lambda item: item[1])
    return {state: round(seconds, 1) for state, seconds in ordered}


def _print_summary(summary: dict[str, Any], ok: bool) -> None:
    out.print()
    out.print(
        f"[bold]wave {summary['wave']}[/bold]: {summary['completed']}/{summary['mailboxes']} "
        f"completed, {summary['failed']} failed, in {summary['seconds']} s"
    )
    out.print("states: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["states"].items())))
    for failure in summary["failures"]:
        out.print(
            f"  [red]failed[/red] {failure.get('mailbox')} at {failure.get('step')} "
            f"({failure.get('error_class')}): {str(failure.get('reason'))[:200]}",
            highlight=False,
        )
    out.print(f"MX before: {summary['mx_before']}")
    out.print(f"MX after:  {summary['mx_after']}")
    if summary.get("step_seconds"):
        out.print(
            "last mailbox reached: "
            + ", ".join(f"{state} at {seconds:.1f} s" for state, seconds in summary["step_seconds"].items())
        )
    out.print(
        "[green]every mailbox completed and MX points on-prem[/green]"
        if ok
        else "[red]the demo did not finish cleanly[/red]"
    )
