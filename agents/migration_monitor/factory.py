"""Building the migration monitor from the configuration (the only place adapters are made)."""

from __future__ import annotations

from agents.migration_monitor.adapters import ExoMoveService
from agents.migration_monitor.agent import MigrationMonitor
from agents.migration_monitor.cycle import PollCycle
from agents.migration_monitor.database import open_database
from agents.migration_monitor.ledger import Ledger
from agents.migration_monitor.relay import OutboxRelay
from agents.migration_monitor.settings import MonitorSettings
from agents.runtime.config import (
    ExchangeOnlineSection,
    HomeboundConfig,
    OnpremExchangeSection,
)
from agents.runtime.runner import AgentDefinition
from agents.shared.exo_client import ExchangeOnlineClient
from events.publisher import Publisher

NAME = "migration-monitor"


def ledger_url(config: HomeboundConfig) -> str:
    return (
        config.migration.ledger_url
        or f"sqlite:///{(config.runtime.state_dir / NAME / 'ledger.sqlite').resolve()}"
    )


def settings_from(config: HomeboundConfig) -> MonitorSettings:
    onprem: OnpremExchangeSection = config.require("onprem_exchange", needed_by=NAME)
    return MonitorSettings(
        endpoint_name=config.migration.endpoint_name,
        delivery_domain=onprem.target_delivery_domain,
        remote_host=onprem.mrsproxy_host,
        target_databases=tuple(onprem.target_databases),
        target_archive_databases=tuple(onprem.target_archive_databases),
        batch_size=config.migration.batch_size,
        max_concurrent_migrations=config.migration.max_concurrent_migrations,
        mrsproxy_max_connections=onprem.mrsproxy_max_connections,
    )


def build(config: HomeboundConfig, publisher: Publisher) -> AgentDefinition:
    exo: ExchangeOnlineSection = config.require("exchange_online", needed_by=NAME)
    onprem: OnpremExchangeSection = config.require("onprem_exchange", needed_by=NAME)
    client = ExchangeOnlineClient(exo)
    moves = ExoMoveService(
        client,
        remote_username=onprem.username,
        remote_password=onprem.password.get_secret_value() if onprem.password else "",
    )
    database = open_database(ledger_url(config))
    ledger = Ledger(database)
    relay = OutboxRelay(ledger, publisher)
    relay.flush()  # whatever a previous run committed but did not get to publish
    settings = settings_from(config)
    monitor = MigrationMonitor(ledger, relay, PollCycle(ledger, moves, settings), settings)

    def close() -> None:
        client.close()
        database.close()

    return AgentDefinition(routes=monitor.routes(), close=close)
