"""Test helpers around a real broker: run a consumer in a thread, watch what is published."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pika

from contracts.envelope import Event, new_event
from contracts.events import CloudMailbox, MailboxDiscovered, Step
from contracts.topology import EVENTS_EXCHANGE
from events.amqp import AmqpSettings
from events.consumer import Consumer, ConsumerOptions, Route
from events.declare import declare
from events.dedupe import MemoryDedupe
from events.publisher import Publisher

LEGACY_DN_PREFIX = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients"


def discovered(n: int = 0, wave: str = "w-test") -> MailboxDiscovered:
    guid = uuid.uuid4()
    data = CloudMailbox(
        primary_smtp_address=f"user{n}@fabrikam.example",
        alias=f"user{n}",
        display_name=f"User {n}",
        user_principal_name=f"user{n}@fabrikam.example",
        exchange_guid=guid,
        legacy_exchange_dn=f"{LEGACY_DN_PREFIX}/cn={guid.hex}-user{n}",
        email_addresses=[f"SMTP:user{n}@fabrikam.example", f"smtp:user{n}@fabrikam.mail.onmicrosoft.com"],
        recipient_type_details="UserMailbox",
        routing_address=f"user{n}@fabrikam.mail.onmicrosoft.com",
    )
    return new_event(MailboxDiscovered, wave_id=wave, producer="test", data=data, mailbox_id=guid)


class Spy:
    """A queue bound to every routing key: what was published, in order."""

    def __init__(self, settings: AmqpSettings, binding: str = "#") -> None:
        self._connection = pika.BlockingConnection(settings.parameters())
        self._channel = self._connection.channel()
        declare(self._channel, [])
        self.queue = self._channel.queue_declare("", exclusive=True).method.queue
        self._channel.queue_bind(self.queue, EVENTS_EXCHANGE, binding)

    def collect(
        self, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
    ) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, _props, body = self._channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                if until(seen):
                    return seen
                self._connection.sleep(0.05)
                continue
            seen.append(json.loads(body))
        raise AssertionError(f"timed out; saw {[e.get('type') for e in seen][-20:]}")

    def close(self) -> None:
        self._connection.close()


def drain_queue(settings: AmqpSettings, queue: str) -> list[tuple[Any, bytes]]:
    """Every message now in *queue* (properties, body), removed from it."""
    connection = pika.BlockingConnection(settings.parameters())
    channel = connection.channel()
    messages = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        messages.append((props, body))
    connection.close()
    return messages


def wait_for_messages(
    settings: AmqpSettings, queue: str, count: int, timeout: float = 20
) -> list[tuple[Any, bytes]]:
    deadline = time.monotonic() + timeout
    found: list[tuple[Any, bytes]] = []
    while time.monotonic() < deadline:
        found += drain_queue(settings, queue)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} messages in {queue}, found {len(found)}")


@contextmanager
def running_consumer(
    settings: AmqpSettings,
    routes: Mapping[str, Route],
    *,
    name: str = "test-agent",
    routing_keys: tuple[str, ...] = ("mailbox.discovered",),
    options: ConsumerOptions | None = None,
) -> Iterator[tuple[Consumer, Publisher]]:
    publisher = Publisher(settings).start()
    consumer = Consumer(
        name,
        routing_keys,
        routes,
        settings=settings,
        publisher=publisher,
        dedupe=MemoryDedupe(),
        options=options or ConsumerOptions(retry_delays=(0.3, 0.3)),
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    assert consumer.consuming.wait(20), "consumer did not start"
    try:
        yield consumer, publisher
    finally:
        consumer.stop()
        thread.join(30)
        publisher.close()


def route(handler: Callable[..., Any], step: Step = Step.PROVISION) -> Route:
    return Route(handler=handler, step=step)


def raw_publish(settings: AmqpSettings, routing_key: str, body: bytes, **props: Any) -> None:
    connection = pika.BlockingConnection(settings.parameters())
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        EVENTS_EXCHANGE, routing_key, body, pika.BasicProperties(delivery_mode=2, **props), mandatory=True
    )
    connection.close()


__all__ = [
    "Event",
    "Spy",
    "discovered",
    "drain_queue",
    "raw_publish",
    "route",
    "running_consumer",
    "wait_for_messages",
]
