"""Every RabbitMQ name in one place: the wiring, readable at a glance.

    producers ──► homebound.events (topic, routing key = event type)
                    ├─► homebound.<agent>              quorum work queue per agent
                    │      ├─ retry: homebound.<agent>.retry.<N>s  (fixed TTL, dead-letters back)
                    │      └─ dead letters: homebound.<agent>.dead-letter
                    └─► homebound.audit                stream bound to '#': the whole history

The migration monitor also owns homebound.migration-monitor.timer.<N>s,
delay queues that carry its own timer (`wave.poll_due`) back to its work queue.
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
    "MONITOR_POLL_DELAYS",
    "PUBLISHES",
    "Agent",
    "ExchangeSpec",
    "Header",
    "QueueNames",
    "QueueSpec",
    "agent_queues",
    "audit_stream",
    "consumer_queues",
    "delay_label",
    "exchanges",
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
                           "wave.failed", "mailbox.failed", "wave.export_page_due"),
    Agent.AD_PROVISIONER: ("mailbox.provisioned", "mailbox.failed"),
    Agent.EXCHANGE_CONFIGURATOR: ("wave.onprem_ready", "mailbox.mail_enabled", "wave.failed",
                                  "mailbox.failed"),
    Agent.MIGRATION_MONITOR: ("mailbox.move_requested", "mailbox.syncing", "mailbox.synced",
                              "mailbox.completing", "mailbox.completed", "mailbox.failed",
                              "wave.migrated", "wave.poll_due"),
    Agent.DNS_CUTOVER: ("wave.dns_prepared", "wave.cutover_started", "wave.cutover_done",
                        "wave.rolled_back", "wave.failed"),
}


def delay_label(seconds: float) -> str:
    """`5s`, `600s`, `250ms`: a delay as it appears in a queue name."""
    milliseconds = round(seconds * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


@dataclass(frozen=True)
class QueueNames:
    """The queues one consumer owns."""

    consumer: str
    work: str
    dead_letter: str

    def retry(self, delay_seconds: float) -> str:
        return f"{self.work}.retry.{delay_label(delay_seconds)}"

    def timer(self, delay_seconds: float) -> str:
        """A delay queue that feeds the work queue: the consumer's own timer."""
        return f"{self.work}.timer.{delay_label(delay_seconds)}"


def queues_for(consumer: str) -> QueueNames:
    base = f"homebound.{consumer}"
    return QueueNames(consumer=consumer, work=base, dead_letter=f"{base}.dead-letter")


# --------------------------------------------------------------------------- declarations as data
# The runtime declares these over AMQP and `homebound contracts export` writes
# them as RabbitMQ definitions: one source, so the two cannot drift.


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, object]
    bindings: tuple[tuple[str, str], ...] = ()  # (exchange, routing key)


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str


def exchanges() -> tuple[ExchangeSpec, ...]:
    return (ExchangeSpec(EVENTS_EXCHANGE, "topic"), ExchangeSpec(DEAD_LETTER_EXCHANGE, "direct"))


def audit_stream() -> QueueSpec:
    # Retention is a policy (max-age), not an argument: arguments cannot change
    # once a queue exists, a policy can.
    return QueueSpec(
        AUDIT_STREAM,
        {"x-queue-type": "stream", "x-stream-max-segment-size-bytes": 8_000_000},
        ((EVENTS_EXCHANGE, "#"),),
    )


def _quorum(**extra: object) -> dict[str, object]:
    # at-least-once dead-lettering needs reject-publish, or the broker silently
    # falls back to at-most-once (PROTOCOLS.md).
    return {"x-queue-type": "quorum", "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish", **extra}


def consumer_queues(
    consumer: str, routing_keys: tuple[str, ...], *,
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
    timer_delays: tuple[float, ...] = (),
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
    single_active_consumer: bool = False,
) -> tuple[QueueSpec, ...]:
    """The work queue, its retry and timer delay queues, and its dead-letter queue."""
    names = queues_for(consumer)
    work_args = _quorum(**{
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-routing-key": names.dead_letter,
    })
    if single_active_consumer:
        work_args["x-single-active-consumer"] = True
    specs = [QueueSpec(names.work, work_args, tuple((EVENTS_EXCHANGE, key) for key in routing_keys))]
    delays = [(names.retry(d), d) for d in retry_delays] + [(names.timer(d), d) for d in timer_delays]
    for name, delay in delays:
        # Fixed TTL per queue: RabbitMQ expires messages from the head only, so one
        # queue per delay keeps a short wait from queueing behind a long one.
        specs.append(QueueSpec(name, _quorum(**{
            "x-message-ttl": round(delay * 1000),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": names.work,
        })))
    specs.append(QueueSpec(names.dead_letter, {"x-queue-type": "quorum"},
                           ((DEAD_LETTER_EXCHANGE, names.dead_letter),)))
    return tuple(specs)


# The migration monitor polls Exchange on its own timer.
MONITOR_POLL_DELAYS: Final = (2.0, 10.0, 30.0)


def agent_queues(
    agent: Agent, *, retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT,
) -> tuple[QueueSpec, ...]:
    is_monitor = agent is Agent.MIGRATION_MONITOR
    return consumer_queues(
        agent.value, BINDINGS[agent], retry_delays=retry_delays,
        timer_delays=MONITOR_POLL_DELAYS if is_monitor else (),
        delivery_limit=delivery_limit,
        # two monitor replicas must never both submit moves: the broker picks one
        single_active_consumer=is_monitor,
    )


# Message headers the runtime writes (x-death is RabbitMQ's own).
class Header(enum.StrEnum):
    ATTEMPT = "x-homebound-attempt"  # failed handling attempts so far
    REASON = "x-homebound-reason"  # why it was dead-lettered, in plain words
    ERROR_CLASS = "x-homebound-error-class"  # transient / permanent / needs-human / invalid
    ERROR_TYPE = "x-homebound-error-type"  # exception class name
    DEAD_LETTERED_BY = "x-homebound-dead-lettered-by"  # the consumer that gave up
    DEAD_LETTERED_AT = "x-homebound-dead-lettered-at"
    ORIGINAL_ROUTING_KEY = "x-homebound-original-routing-key"
    STEP = "x-homebound-step"  # the procedure step that failed
    REPLAYED = "x-replayed"  # how many times it was replayed
