"""Looking into dead-letter queues and replaying what an operator selects.

A replay re-publishes the dead-lettered message to its consumer's work queue
with its original event id (the dedupe store never remembered it, because it
was never handled), the attempt count reset and `x-replayed` incremented.
For a mailbox event it first publishes `mailbox.replayed`, so the ledger
returns the mailbox to the state before the failed step before the step runs
again. The dead letter is acked only after both are confirmed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel

from contracts.envelope import new_event
from contracts.events import MailboxReplayed, MailboxReplayedData, Step
from contracts.topology import Header, queues_for
from events.amqp import AmqpSettings, connect_blocking
from events.publisher import Publisher

__all__ = ["DeadLetter", "Selection", "list_dead_letters", "replay"]

_RESET_HEADERS = {Header.ATTEMPT.value, Header.REASON.value, Header.ERROR_CLASS.value,
                  Header.ERROR_TYPE.value, Header.DEAD_LETTERED_AT.value,
                  Header.DEAD_LETTERED_BY.value, "x-death", "x-first-death-exchange",
                  "x-first-death-queue", "x-first-death-reason", "x-delivery-count"}


@dataclass(frozen=True)
class DeadLetter:
    consumer: str
    reason: str
    error_class: str
    error_type: str
    attempts: int
    dead_lettered_at: str
    step: str | None
    replayed: int
    event_type: str | None
    event_id: str | None
    wave_id: str | None
    mailbox_id: str | None
    address: str | None
    size: int

    def matches(self, selection: Selection) -> bool:
        if selection.wave and self.wave_id != selection.wave:
            return False
        if selection.error_class and self.error_class != selection.error_class:
            return False
        if selection.mailbox:
            wanted = selection.mailbox.lower()
            if wanted not in {(self.mailbox_id or "").lower(), (self.address or "").lower()}:
                return False
        return True


@dataclass(frozen=True)
class Selection:
    mailbox: str | None = None  # ExchangeGuid or primary SMTP address
    wave: str | None = None
    error_class: str | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.mailbox or self.wave or self.error_class)


def _describe(consumer: str, props: pika.BasicProperties, body: bytes) -> DeadLetter:
    headers = dict(props.headers or {})
    document: dict[str, Any] = {}
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict):
            document = parsed
    except (ValueError, UnicodeDecodeError):
        pass
    data = document.get("data") if isinstance(document.get("data"), dict) else {}
    assert isinstance(data, dict)
    address = data.get("primary_smtp_address")
    if address is None and isinstance(data.get("mailbox"), dict):
        address = data["mailbox"].get("primary_smtp_address")

    def text(value: Any) -> str | None:
        return value.decode() if isinstance(value, bytes) else (str(value) if value is not None else None)

    return DeadLetter(
        consumer=consumer,
        reason=text(headers.get(Header.REASON)) or "(broker dead-lettered: " + str(
            headers.get("x-first-death-reason", "unknown")) + ")",
        error_class=text(headers.get(Header.ERROR_CLASS)) or "unknown",
        error_type=text(headers.get(Header.ERROR_TYPE)) or "",
        attempts=int(headers.get(Header.ATTEMPT, 0) or 0),
        dead_lettered_at=text(headers.get(Header.DEAD_LETTERED_AT)) or "",
        step=text(headers.get(Header.STEP)),
        replayed=int(headers.get(Header.REPLAYED, 0) or 0),
        event_type=text(document.get("type")),
        event_id=text(document.get("event_id")),
        wave_id=text(document.get("wave_id")),
        mailbox_id=text(document.get("mailbox_id")),
        address=text(address),
        size=len(body),
    )


@contextmanager
def _channel(settings: AmqpSettings) -> Iterator[BlockingChannel]:
    connection = connect_blocking(settings, give_up_after=15)
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def _walk(
    channel: BlockingChannel, queue: str, visit: Callable[[int, pika.BasicProperties, bytes], None]
) -> None:
    """basic_get every message once without acking (unacked ones return at channel close)."""
    depth = channel.queue_declare(queue, passive=True).method.message_count
    for _ in range(depth):
        method, props, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        visit(method.delivery_tag, props, body)


def list_dead_letters(settings: AmqpSettings, consumers: list[str]) -> list[DeadLetter]:
    """What each consumer's dead-letter queue holds, without changing it."""
    found: list[DeadLetter] = []
    for consumer in consumers:
        with _channel(settings) as channel:
            def keep(_tag: int, props: pika.BasicProperties, body: bytes, name: str = consumer) -> None:
                found.append(_describe(name, props, body))

            try:
                _walk(channel, queues_for(consumer).dead_letter, keep)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:  # a consumer that never ran has no queue yet
                    raise
    return found


def replay(
    settings: AmqpSettings, consumers: list[str], selection: Selection, *,
    requested_by: str = "", dry_run: bool = False,
) -> list[DeadLetter]:
    """Replay the dead letters matching *selection*; returns what was (or would be) replayed."""
    replayed: list[DeadLetter] = []
    with Publisher(settings.with_client_name("homebound replay"), connect_timeout=15) as publisher:
        for consumer in consumers:
            names = queues_for(consumer)
            with _channel(settings) as channel:
                def visit(tag: int, props: pika.BasicProperties, body: bytes,
                          consumer: str = consumer, channel: BlockingChannel = channel,
                          work_queue: str = names.work) -> None:
                    letter = _describe(consumer, props, body)
                    if not letter.matches(selection):
                        return
                    replayed.append(letter)
                    if dry_run:
                        return
                    _announce(publisher, letter, requested_by)
                    headers = {k: v for k, v in (props.headers or {}).items() if k not in _RESET_HEADERS}
                    headers[Header.REPLAYED.value] = letter.replayed + 1
                    props.headers = headers
                    publisher.wait([publisher.publish_raw("", work_queue, body, props)])
                    channel.basic_ack(tag)

                try:
                    _walk(channel, names.dead_letter, visit)
                except pika.exceptions.ChannelClosedByBroker as exc:
                    if exc.reply_code != 404:
                        raise
    return replayed


def _announce(publisher: Publisher, letter: DeadLetter, requested_by: str) -> None:
    if not (letter.mailbox_id and letter.wave_id):
        return
    try:
        step = Step(letter.step) if letter.step else Step.MOVE
    except ValueError:
        step = Step.MOVE
    data = MailboxReplayedData(step=step, replay_count=letter.replayed + 1,
                               requested_by=requested_by[:256], primary_smtp_address=letter.address)
    event = new_event(MailboxReplayed, wave_id=letter.wave_id, producer="cli",
                      mailbox_id=uuid.UUID(letter.mailbox_id), data=data)
    publisher.publish_events([event])
