"""The runtime against the real RabbitMQ: confirms, dedupe, retries, dead letters."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from contracts.events import MailboxDiscovered
from contracts.topology import Header, queues_for
from events.amqp import AmqpSettings
from events.consumer import ConsumerOptions
from events.errors import PermanentError, TransientError
from tests.events.broker import (
    Spy,
    discovered,
    raw_publish,
    route,
    running_consumer,
    wait_for_messages,
)

DLQ = queues_for("test-agent").dead_letter


def test_an_event_published_with_confirms_reaches_the_handler_once_even_when_sent_twice(
    broker: AmqpSettings,
) -> None:
    calls: list[uuid.UUID] = []
    done = threading.Event()

    def provision(event: MailboxDiscovered, context: Any) -> None:
        calls.append(event.event_id)
        if len(calls) >= 1:
            done.set()

    event = discovered()
    with running_consumer(broker, {"mailbox.discovered": route(provision)}) as (_consumer, publisher):
        publisher.publish_events([event, event])  # the second is a duplicate by event_id
        later = discovered(1)
        publisher.publish_events([later])
        deadline = time.monotonic() + 10
        while later.event_id not in calls and time.monotonic() < deadline:
            time.sleep(0.05)
    assert calls.count(event.event_id) == 1
    assert calls.count(later.event_id) == 1


def test_a_transient_failure_is_retried_after_its_delay_and_then_succeeds(broker: AmqpSettings) -> None:
    attempts: list[float] = []
    succeeded = threading.Event()

    def flaky(event: MailboxDiscovered, context: Any) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise TransientError("directory busy")
        assert context.attempt == 1
        succeeded.set()

    options = ConsumerOptions(retry_delays=(1.0, 1.0))
    with running_consumer(broker, {"mailbox.discovered": route(flaky)}, options=options) as (_, publisher):
        publisher.publish_events([discovered()])
        assert succeeded.wait(15), "the retried message never came back"
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.95  # waited in the 1 s retry queue


def test_a_handler_that_always_fails_ends_in_the_dead_letter_queue_and_a_failure_is_announced(
    broker: AmqpSettings,
) -> None:
    spy = Spy(broker, "mailbox.failed")
    calls = []

    def broken(event: MailboxDiscovered, context: Any) -> None:
        calls.append(context.attempt)
        raise TransientError("LDAP server unavailable")

    event = discovered()
    with running_consumer(broker, {"mailbox.discovered": route(broken)}) as (_, publisher):
        publisher.publish_events([event])
        [(props, body)] = wait_for_messages(broker, DLQ, 1)
        failures = spy.collect(lambda seen: len(seen) >= 1)
    assert calls == [0, 1, 2]  # first try + two retry tiers
    assert json.loads(body)["event_id"] == str(event.event_id)
    assert props.message_id == str(event.event_id)
    headers = props.headers
    assert headers[Header.ATTEMPT] == 3
    assert headers[Header.ERROR_CLASS] == "transient"
    assert "LDAP server unavailable" in headers[Header.REASON]
    assert "gave up after 3 attempts" in headers[Header.REASON]
    [failed] = failures
    assert failed["type"] == "mailbox.failed"
    assert failed["mailbox_id"] == str(event.mailbox_id)
    assert failed["causation_id"] == str(event.event_id)
    assert failed["data"]["step"] == "provision"
    assert failed["data"]["attempts"] == 3
    assert failed["data"]["primary_smtp_address"] == "user0@fabrikam.example"
    spy.close()


def test_a_permanent_failure_is_dead_lettered_at_once_with_its_remediation(broker: AmqpSettings) -> None:
    spy = Spy(broker, "mailbox.failed")
    calls = []

    def refuses(event: MailboxDiscovered, context: Any) -> None:
        calls.append(1)
        raise PermanentError("the OU does not exist", remediation="create the OU, then replay")

    with running_consumer(broker, {"mailbox.discovered": route(refuses)}) as (_, publisher):
        publisher.publish_events([discovered()])
        [(props, _body)] = wait_for_messages(broker, DLQ, 1)
        [failed] = spy.collect(lambda seen: len(seen) >= 1)
    assert calls == [1]
    assert props.headers[Header.ERROR_CLASS] == "permanent"
    assert failed["data"]["error_class"] == "permanent"
    assert failed["data"]["remediation"] == "create the OU, then replay"
    spy.close()


def test_unusable_messages_are_dead_lettered_with_a_reason_and_the_consumer_goes_on(
    broker: AmqpSettings,
) -> None:
    handled = threading.Event()

    def provision(event: MailboxDiscovered, context: Any) -> None:
        handled.set()

    good = discovered()
    wrong_schema = json.loads(discovered().to_json())
    wrong_schema["data"]["primary_smtp_address"] = "not an address"
    unknown = json.loads(discovered().to_json()) | {"type": "mailbox.teleported"}
    with running_consumer(broker, {"mailbox.discovered": route(provision)}) as (_, publisher):
        raw_publish(broker, "mailbox.discovered", b"{not json", content_type="application/json")
        raw_publish(broker, "mailbox.discovered", json.dumps(wrong_schema).encode())
        raw_publish(broker, "mailbox.discovered", json.dumps(unknown).encode())
        raw_publish(broker, "mailbox.discovered", b"x" * (10 * 1024 * 1024))
        publisher.publish_events([good])
        assert handled.wait(20), "the consumer stopped after the bad messages"
        dead = wait_for_messages(broker, DLQ, 4)
    reasons = sorted((p.headers[Header.ERROR_CLASS], p.headers[Header.REASON]) for p, _ in dead)
    kinds = [kind for kind, _ in reasons]
    assert kinds == ["invalid", "too-large", "undecodable", "unknown-type"]
    by_kind = dict(reasons)
    assert "not JSON" in by_kind["undecodable"]
    assert "data.primary_smtp_address" in by_kind["invalid"]
    assert "mailbox.teleported" in by_kind["unknown-type"]
    assert "10485760 bytes" in by_kind["too-large"]
    assert max(len(body) for _, body in dead) == 10 * 1024 * 1024  # kept whole, never dropped
