"""Every RabbitMQ name in one place: the wiring, readable at a glance.

    producers ──► homebound.events (topic, routing key = event type)
                    ├─► homebound.<agent>              quorum work queue per agent
                    │      ├─ retry: homebound.<agent>.retry.<N>s  (fixed TTL, dead-letters back)
                    │      └─ dead letters: homebound.<agent>.dead-letter
                    └─► homebound.audit                stream bound to '#': the whole history

The migration monitor also owns homebound.migration-monitor.poll, a delay
queue that carries its own timer (`wave.poll_due`) back to its work queue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "AUDIT_STREAM",
    "BINDINGS",
    "DEAD_LETTER_EXCHANGE",
    "DEFAULT_AUDIT_RETENTION",
    "DEFAULT_DELIVERY_LIMIT",
    "DEFAULT_RETRY_DELAYS",
    "EVENTS_EXCHANGE",
    "PUBLISHES",
    "Agent",
    "Header",
    "QueueNames",
    "poll_queue",
    "queues_for",
]

EVENTS_EXCHANGE: Final = "homebound.events"
DEAD_LETTER_EXCHANGE: Final = "homebound.dead-letter"
AUDIT_STREAM: Final = "homebound.audit"

DEFAULT_RETRY_DELAYS: Final = (5, 60, 600)  # seconds; one wait queue per tier
DEFAULT_DELIVERY_LIMIT: Final = 20  # redeliveries (crashes mid-handler) before the broker dead-letters
DEFAULT_AUDIT_RETENTION: Final = "30D"


class Agent(enum.StrEnum):
    CLOUD_EXPORTER = "cloud-exporter"
    AD_PROVISIONER = "ad-provisioner"
    EXCHANGE_CONFIGURATOR = "exchange-configurator"
    MIGRATION_MONITOR = "migration-monitor"
    DNS_CUTOVER = "dns-cutover"


# What each agent consumes (routing keys on EVENTS_EXCHANGE).
BINDINGS: Final[dict[Agent, tuple[str, ...]]] = {
    Agent.CLOUD_EXPORTER: ("wave.requested",),
    Agent.AD_PROVISIONER: ("mailbox.discovered",),
    Agent.EXCHANGE_CONFIGURATOR: ("wave.requested", "mailbox.provisioned"),
    Agent.MIGRATION_MONITOR: (
        "wave.requested", "wave.cloud_ready", "wave.onprem_ready", "wave.dns_prepared",
        "wave.exported", "wave.cutover_started", "wave.cutover_done", "wave.failed",
        "wave.completion_requested", "wave.rolled_back",
        "mailbox.discovered", "mailbox.provisioned", "mailbox.mail_enabled",
        "mailbox.failed", "mailbox.replayed",
    ),
    Agent.DNS_CUTOVER: ("wave.requested", "wave.migrated", "wave.rollback_requested"),
}

# Who publishes what (for the AsyncAPI document and for reading the flow).
PUBLISHES: Final[dict[str, tuple[str, ...]]] = {
    "cli": ("wave.requested", "wave.completion_requested", "wave.rollback_requested",
            "mailbox.replayed"),
    Agent.CLOUD_EXPORTER: ("wave.cloud_ready", "mailbox.discovered", "wave.exported",
                           "wave.failed", "mailbox.failed"),
    Agent.AD_PROVISIONER: ("mailbox.provisioned", "mailbox.failed"),
    Agent.EXCHANGE_CONFIGURATOR: ("wave.onprem_ready", "mailbox.mail_enabled", "wave.failed",
                                  "mailbox.failed"),
    Agent.MIGRATION_MONITOR: ("mailbox.move_requested", "mailbox.syncing", "mailbox.synced",
                              "mailbox.completing", "mailbox.completed", "mailbox.failed",
                              "wave.migrated", "wave.poll_due"),
    Agent.DNS_CUTOVER: ("wave.dns_prepared", "wave.cutover_started", "wave.cutover_done",
                        "wave.rolled_back", "wave.failed"),
}


@dataclass(frozen=True)
class QueueNames:
    """The queues one consumer owns."""

    work: str
    dead_letter: str
    retry_prefix: str

    def retry(self, delay_seconds: int) -> str:
        return f"{self.retry_prefix}{delay_seconds}s"


def queues_for(consumer: str) -> QueueNames:
    base = f"homebound.{consumer}"
    return QueueNames(work=base, dead_letter=f"{base}.dead-letter", retry_prefix=f"{base}.retry.")


def poll_queue(delay_seconds: int) -> str:
    """The monitor's timer queue for one poll interval."""
    return f"homebound.{Agent.MIGRATION_MONITOR}.poll.{delay_seconds}s"


# Message headers the runtime writes (x-death is RabbitMQ's own).
class Header(enum.StrEnum):
    ATTEMPT = "x-homebound-attempt"  # failed handling attempts so far
    REASON = "x-homebound-reason"  # why it was dead-lettered, in plain words
    ERROR_CLASS = "x-homebound-error-class"  # transient / permanent / needs-human / invalid
    ERROR_TYPE = "x-homebound-error-type"  # exception class name
    DEAD_LETTERED_BY = "x-homebound-dead-lettered-by"  # the consumer that gave up
    DEAD_LETTERED_AT = "x-homebound-dead-lettered-at"
    ORIGINAL_ROUTING_KEY = "x-homebound-original-routing-key"
    REPLAYED = "x-replayed"  # how many times it was replayed
