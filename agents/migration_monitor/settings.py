"""The monitor's settings, resolved from the configuration once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.topology import MONITOR_POLL_DELAYS

__all__ = ["MonitorSettings"]


@dataclass(frozen=True)
class MonitorSettings:
    endpoint_name: str
    delivery_domain: str  # TargetDeliveryDomain: the on-prem mail domain
    remote_host: str  # the MRSProxy FQDN (move requests' RemoteHostName)
    target_databases: tuple[str, ...]
    target_archive_databases: tuple[str, ...]
    batch_size: int = 50
    max_concurrent_migrations: int = 20  # used until the endpoint's own value is known
    mrsproxy_max_connections: int = 100
    statistics_per_poll: int = 20  # Get-MigrationUserStatistics calls per poll, for progress
    max_move_attempts: int = 3  # transient move failures before a mailbox is dead-lettered
    poll_delays: tuple[float, ...] = MONITOR_POLL_DELAYS  # busy, idle, waiting for completion
    batch_prefix: str = "homebound"
    cap_cooldown_seconds: float = 120.0
