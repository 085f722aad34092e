"""Declaring the topology (from contracts.topology) over a channel, idempotently."""

from __future__ import annotations

from collections.abc import Iterable

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from contracts.topology import QueueSpec, audit_stream, exchanges

__all__ = ["TopologyConflict", "declare"]


class TopologyConflict(RuntimeError):
    """A queue exists with other arguments (RabbitMQ's PRECONDITION_FAILED, 406)."""


def declare(channel: BlockingChannel, queues: Iterable[QueueSpec], *, with_audit: bool = True) -> None:
    """Declare the exchanges, the audit stream (by default) and *queues* with their bindings."""
    for exchange in exchanges():
        channel.exchange_declare(exchange.name, exchange.type, durable=True)
    specs = [audit_stream(), *queues] if with_audit else list(queues)
    for spec in specs:
        try:
            channel.queue_declare(spec.name, durable=True, arguments=dict(spec.arguments))
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 406:
                raise TopologyConflict(
                    f"queue {spec.name} already exists with different arguments "
                    f"({exc.reply_text}); delete it or apply the generated definitions"
                ) from exc
            raise
        for exchange_name, routing_key in spec.bindings:
            channel.queue_bind(spec.name, exchange_name, routing_key)
