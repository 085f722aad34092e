"""The only place the exchange-configurator's real clients are built."""

from __future__ import annotations

from agents.exchange_configurator.adapters import ShellExchange
from agents.exchange_configurator.agent import ConfiguratorSettings, ExchangeConfigurator
from agents.exchange_configurator.enabling import MailEnabler
from agents.runtime.config import ExchangeOnlineSection, HomeboundConfig, OnpremExchangeSection
from agents.runtime.runner import AgentDefinition
from agents.shared.exchange_shell import ExchangeShell
from events.publisher import Publisher

__all__ = ["build"]

MAX_WORKERS = 1000


def build(config: HomeboundConfig, publisher: Publisher) -> AgentDefinition:
    onprem: OnpremExchangeSection = config.require("onprem_exchange", needed_by="the exchange-configurator")
    cloud: ExchangeOnlineSection = config.require(
        "exchange_online", needed_by="the exchange-configurator (the tenant's routing_domain)")
    shell = ExchangeShell.from_section(onprem)
    exchange = ShellExchange(shell)
    enabler = MailEnabler(exchange, batch_size=onprem.batch_size, wait_seconds=onprem.batch_wait_seconds)
    agent = ExchangeConfigurator(exchange, enabler, ConfiguratorSettings(
        routing_domain=cloud.routing_domain, send_connector_name=onprem.send_connector_name,
        target_databases=tuple(onprem.target_databases),
        target_archive_databases=tuple(onprem.target_archive_databases),
        target_delivery_domain=onprem.target_delivery_domain, mail_enable_mode=onprem.mail_enable_mode,
        mrsproxy_max_connections=onprem.mrsproxy_max_connections))
    # a full batch per open shell in flight (one runs while the next fills), plus a few
    # threads so wave events never wait behind mailboxes
    workers = min(onprem.batch_size * onprem.shells, MAX_WORKERS) + 4
    return AgentDefinition(routes=agent.routes(), close=shell.close, workers=workers, prefetch=workers,
                           extra={"batch_stats": enabler.stats})
