"""Opening a connection to each configured system, for `config check --connect`."""

from __future__ import annotations

from collections.abc import Callable

from agents.ad_provisioner.probe import check_directory  # cheap: ldap3 loads when it runs
from agents.cloud_exporter.probe import check_exchange_online  # cheap: msal loads when it runs
from agents.commands.common import err, out
from agents.runtime.config import HomeboundConfig
from agents.runtime.runner import amqp_settings
from events.amqp import connect_blocking


def _amqp(config: HomeboundConfig) -> str:
    connection = connect_blocking(amqp_settings(config, "homebound config check"), give_up_after=5)
    version = connection._impl.server_properties.get("version", b"?")
    connection.close()
    return f"RabbitMQ {version.decode() if isinstance(version, bytes) else version}"


CHECKS: dict[str, Callable[[HomeboundConfig], str]] = {"amqp": _amqp}
CHECKS["active_directory"] = check_directory
CHECKS["exchange_online"] = check_exchange_online
CHECKS["dns"] = lambda config: __import__("agents.dns_cutover.factory", fromlist=["_"]).check_dns(config)
CHECKS["onprem_exchange"] = lambda c: __import__("agents.shared.exchange_shell", fromlist=["_"]).probe(c)


def register_check(section: str, check: Callable[[HomeboundConfig], str]) -> None:
    CHECKS[section] = check


def check_connections(config: HomeboundConfig) -> bool:
    healthy = True
    for section, check in CHECKS.items():
        if section != "amqp" and getattr(config, section, None) is None:
            continue
        try:
            detail = check(config)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            healthy = False
            err.print(f"[red]✗[/red] {section}: cannot connect: {type(exc).__name__}: {str(exc)[:300]}")
        else:
            out.print(f"[green]✓[/green] {section}: connected ({detail})")
    return healthy
