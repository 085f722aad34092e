"""Builds the DNS cutover agent from the configuration: the only place its real adapter is made."""

from __future__ import annotations

from pathlib import Path

from agents.dns_cutover.adapters import TsigDnsServer
from agents.dns_cutover.agent import DnsCutover
from agents.dns_cutover.plan import Targets
from agents.dns_cutover.ports import DnsRejected
from agents.dns_cutover.state import CutoverState
from agents.runtime.config import ConfigError, DnsSection, GatewaySection, HomeboundConfig
from agents.runtime.runner import AgentDefinition
from contracts.events import Step
from contracts.topology import Agent
from events.consumer import Route
from events.publisher import Publisher

__all__ = ["build", "check_dns", "dns_server", "targets"]


def build(config: HomeboundConfig, publisher: Publisher) -> AgentDefinition:
    section: DnsSection = config.require("dns", needed_by="dns-cutover")
    state = CutoverState(state_file(config))
    agent = DnsCutover(dns_server(config), state, targets(config),
                       verify_resolvers=tuple(section.verify_resolvers),
                       verify_timeout=section.verify_timeout_seconds)
    routes = {
        "wave.requested": Route(agent.prepare, Step.DNS_PREPARATION),
        "wave.migrated": Route(agent.cut_over, Step.CUTOVER),
        "wave.rollback_requested": Route(agent.roll_back, Step.CUTOVER),
    }
    return AgentDefinition(routes=routes, close=state.close)


def dns_server(config: HomeboundConfig) -> TsigDnsServer:
    section: DnsSection = config.require("dns", needed_by="dns-cutover")
    try:
        return TsigDnsServer.from_config(section)
    except DnsRejected as exc:
        raise ConfigError({"dns": [exc.reason]}) from None


def targets(config: HomeboundConfig) -> Targets:
    section: DnsSection = config.require("dns", needed_by="dns-cutover")
    gateway: GatewaySection = config.require("gateway", needed_by="dns-cutover")
    return Targets(
        gateway_host=gateway.host, gateway_addresses=tuple(gateway.addresses),
        autodiscover_target=section.autodiscover_target or gateway.host,
        cloud_spf_include=section.cloud_spf_include or None,
        cutover_ttl=section.cutover_ttl, restore_ttl=section.restore_ttl,
    )


def state_file(config: HomeboundConfig) -> Path:
    section: DnsSection = config.require("dns", needed_by="dns-cutover")
    return section.state_file or config.runtime.state_dir / Agent.DNS_CUTOVER.value / "dns-state.sqlite"


def check_dns(config: HomeboundConfig) -> str:
    """`config check --connect`: a signed SOA query and a no-op update to the gateway's zone."""
    gateway = config.gateway
    return dns_server(config).probe(gateway.host if gateway is not None else None)
