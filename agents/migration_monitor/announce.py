"""Writing what the monitor announces into the ledger's outbox, in the caller's transaction."""

from __future__ import annotations

from agents.migration_monitor.database import Transaction
from agents.migration_monitor.ledger import Ledger
from contracts.envelope import Event
from contracts.events import ErrorClass, Step
from contracts.topology import EVENTS_EXCHANGE, Agent, queues_for
from events.consumer import dead_letter_headers

__all__ = ["announce", "dead_letter"]

_DEAD_LETTERS = queues_for(Agent.MIGRATION_MONITOR.value).dead_letter


def announce(ledger: Ledger, tx: Transaction, *events: Event) -> None:
    """Queue *events* for the exchange; published by the relay after the commit."""
    for event in events:
        ledger.enqueue(
            tx,
            message_id=str(event.event_id),
            exchange=EVENTS_EXCHANGE,
            routing_key=event.type,
            body=event.to_json(),
        )


def dead_letter(
    ledger: Ledger,
    tx: Transaction,
    subject: Event,
    *,
    step: Step,
    error_class: ErrorClass,
    reason: str,
    error_type: str = "",
) -> None:
    """Park *subject* (the mailbox's `mailbox.mail_enabled`) in our dead-letter queue.

    `homebound dlq replay --mailbox M` brings it back after the cause is fixed.
    """
    headers = dead_letter_headers(
        Agent.MIGRATION_MONITOR.value,
        {},
        reason=reason,
        error_class=error_class.value,
        error_type=error_type,
        attempts=1,
        routing_key=subject.type,
        step=step,
    )
    ledger.enqueue(
        tx,
        message_id=f"dead-letter/{subject.event_id}",
        exchange="",
        routing_key=_DEAD_LETTERS,
        body=subject.to_json(),
        headers=headers,
    )
