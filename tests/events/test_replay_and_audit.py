"""Dead letters are listed and replayed selectively; the audit stream keeps everything."""

from __future__ import annotations

import threading
import time
from typing import Any

from contracts.events import MailboxDiscovered
from contracts.topology import queues_for
from events.amqp import AmqpSettings
from events.audit import tail_audit
from events.errors import PermanentError
from events.replay import Selection, list_dead_letters, replay
from tests.events.broker import Spy, discovered, drain_queue, route, running_consumer


def test_a_fixed_mailbox_is_replayed_from_the_dead_letter_queue_and_the_others_stay(
    broker: AmqpSettings,
) -> None:
    fixed: set[str] = set()
    handled: list[str] = []
    done = threading.Event()

    def provision(event: MailboxDiscovered, context: Any) -> None:
        address = event.data.primary_smtp_address
        if address not in fixed:
            raise PermanentError(f"no OU for {address}")
        handled.append(address)
        assert context.replayed == 1
        done.set()

    spy = Spy(broker, "mailbox.replayed")
    broken, other = discovered(3), discovered(4)
    with running_consumer(broker, {"mailbox.discovered": route(provision)}) as (_, publisher):
        publisher.publish_events([broken, other])
        deadline = time.monotonic() + 15
        letters: list[Any] = []
        while len(letters) < 2 and time.monotonic() < deadline:
            letters = list_dead_letters(broker, ["test-agent"])
            time.sleep(0.1)
        assert {letter.address for letter in letters} == {"user3@fabrikam.example", "user4@fabrikam.example"}
        assert all(letter.error_class == "permanent" and letter.step == "provision" for letter in letters)
        fixed.add("user3@fabrikam.example")
        replayed = replay(broker, ["test-agent"], Selection(mailbox="user3@fabrikam.example"))
        assert [letter.address for letter in replayed] == ["user3@fabrikam.example"]
        assert done.wait(15), "the replayed message was not handled"
        [announcement] = spy.collect(lambda seen: len(seen) >= 1)
    assert handled == ["user3@fabrikam.example"]
    assert announcement["mailbox_id"] == str(broken.mailbox_id)
    assert announcement["data"]["step"] == "provision"
    remaining = [letter.address for letter in list_dead_letters(broker, ["test-agent"])]
    assert remaining == ["user4@fabrikam.example"]
    spy.close()


def test_the_audit_stream_returns_every_event_in_order_from_the_first(broker: AmqpSettings) -> None:
    events = [discovered(n) for n in range(25)]
    with running_consumer(broker, {"mailbox.discovered": route(lambda e, c: None)}) as (_, publisher):
        publisher.publish_events(events)
    seen: list[str] = []
    tail_audit(broker, lambda event, _offset: seen.append(event["event_id"]) and None, offset="first")
    assert seen == [str(e.event_id) for e in events]
    assert drain_queue(broker, queues_for("test-agent").dead_letter) == []
