"""Building the cloud-exporter with its real adapters (the only place they are made)."""

from __future__ import annotations

from agents.cloud_exporter.adapters import ExoMailboxSource, ExoOrganisation
from agents.cloud_exporter.agent import CloudExporter
from agents.cloud_exporter.export import MailboxExport
from agents.cloud_exporter.ports import NewMigrationEndpoint
from agents.cloud_exporter.preparation import CloudPreparation, PreparationSettings
from agents.runtime.config import (
    ConfigError,
    ExchangeOnlineSection,
    GatewaySection,
    HomeboundConfig,
    OnpremExchangeSection,
)
from agents.runtime.runner import AgentDefinition
from agents.shared.exo_client import ExchangeOnlineClient
from contracts.events import Step
from events.consumer import Route
from events.publisher import Publisher

__all__ = ["build"]

AGENT = "the cloud-exporter"


def build(config: HomeboundConfig, publisher: Publisher) -> AgentDefinition:
    """The agent's routes over one Exchange Online client (one token cache, one connection pool)."""
    del publisher  # the runtime publishes what the handler returns and what it hands to context
    exo: ExchangeOnlineSection = config.require("exchange_online", needed_by=AGENT)
    gateway: GatewaySection = config.require("gateway", needed_by=AGENT)
    onprem: OnpremExchangeSection = config.require("onprem_exchange", needed_by=AGENT)
    if onprem.password is None:
        raise ConfigError({"onprem_exchange": [
            "password: required by the cloud-exporter for the migration endpoint's credentials; "
            "set HOMEBOUND_ONPREM_EXCHANGE_PASSWORD_FILE"]})
    migration = config.migration
    client = ExchangeOnlineClient(exo)
    source = ExoMailboxSource(client, page_size=exo.page_size,
                              include_statistics=exo.include_statistics,
                              statistics_concurrency=exo.statistics_concurrency)
    preparation = CloudPreparation(ExoOrganisation(client), PreparationSettings(
        connector_name=migration.outbound_connector_name,
        gateway_host=gateway.host,
        endpoint=NewMigrationEndpoint(
            name=migration.endpoint_name, remote_server=onprem.mrsproxy_host,
            username=onprem.username, password=onprem.password,
            max_concurrent_migrations=migration.max_concurrent_migrations),
        endpoint_test_timeout_seconds=migration.endpoint_test_timeout_seconds,
    ))
    agent = CloudExporter(preparation, MailboxExport(source, routing_domain=exo.routing_domain))

    def close() -> None:
        source.close()
        client.close()

    return AgentDefinition(
        routes={"wave.requested": Route(agent.on_wave_requested, Step.CLOUD_PREPARATION),
                "wave.export_page_due": Route(agent.on_export_page_due, Step.EXPORT)},
        close=close, extra={"exo_client": client})
