"""How fast the RabbitMQ runtime publishes and consumes on this machine.

    python -m bench.runtime [--messages 20000]

Measures, in a throw-away vhost on the broker of $HOMEBOUND_AMQP_URL:
* publish: the Publisher with up to 1,000 confirms in flight (1 KiB events);
* baseline: pika's BlockingConnection waiting for each confirm in turn;
* consume: the Consumer (decode, validate, dedupe, no-op handler, ack) draining a full queue;
* chain: consume -> confirmed publish of a follow-up -> ack, end to end.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pika

from agents.runtime.logging import configure_logging
from contracts.events import MailboxDiscovered, MailboxFailed, MailboxFailedData, Step
from contracts.topology import EVENTS_EXCHANGE
from events.amqp import AmqpSettings
from events.consumer import Consumer, ConsumerOptions, Route
from events.declare import declare
from events.dedupe import SqliteDedupe
from events.publisher import Publisher
from events.testing import temporary_vhost
from tests.events.broker import discovered


def _measure_publish(settings: AmqpSettings, events: list[MailboxDiscovered]) -> float:
    with Publisher(settings) as publisher:
        started = time.perf_counter()
        publisher.publish_events(events, timeout=600)
        return len(events) / (time.perf_counter() - started)


def _measure_blocking_baseline(settings: AmqpSettings, events: list[MailboxDiscovered]) -> float:
    connection = pika.BlockingConnection(settings.parameters())
    channel = connection.channel()
    channel.confirm_delivery()
    started = time.perf_counter()
    for event in events:
        channel.basic_publish(EVENTS_EXCHANGE, event.type, event.to_json(),
                              pika.BasicProperties(delivery_mode=2, message_id=str(event.event_id)),
                              mandatory=True)
    rate = len(events) / (time.perf_counter() - started)
    connection.close()
    return rate


def _measure_consume(settings: AmqpSettings, count: int, state: Path, *, chain: bool) -> float:
    done = threading.Event()
    handled = 0
    lock = threading.Lock()

    def handler(event: Any, context: Any) -> Any:
        nonlocal handled
        with lock:
            handled += 1
            if handled >= count:
                done.set()
        if chain:
            return [context.follow(MailboxFailed, MailboxFailedData(
                step=Step.PROVISION, error_class="transient", reason="bench"))]
        return None

    with Publisher(settings) as publisher:
        consumer = Consumer("bench-agent", ("mailbox.discovered",),
                            {"mailbox.discovered": Route(handler, Step.PROVISION)},
                            settings=settings, publisher=publisher,
                            dedupe=SqliteDedupe(state / f"dedupe-{uuid.uuid4().hex}.sqlite"),
                            options=ConsumerOptions(prefetch=200, workers=8))
        # fill the queue first, then time the drain
        connection = pika.BlockingConnection(settings.parameters())
        declare(connection.channel(), consumer.queues)
        connection.close()
        publisher.publish_events([discovered(n) for n in range(count)], timeout=600)
        thread = threading.Thread(target=consumer.run, daemon=True)
        started = time.perf_counter()
        thread.start()
        done.wait(600)
        elapsed = time.perf_counter() - started
        consumer.stop()
        thread.join(60)
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    configure_logging("warning", "console")
    events = [discovered(n) for n in range(args.messages)]
    size = len(events[0].to_json())
    results: dict[str, Any] = {"messages": args.messages, "event_bytes": size}
    state = Path(".bench-state")
    state.mkdir(exist_ok=True)
    with temporary_vhost("hbbench") as settings:
        channel_conn = pika.BlockingConnection(settings.parameters())
        declare(channel_conn.channel(), [])
        channel_conn.close()
        results["publish_per_s"] = round(_measure_publish(settings, events))
        results["blocking_confirm_each_per_s"] = round(
            _measure_blocking_baseline(settings, events[: min(5000, len(events))]))
    with temporary_vhost("hbbench") as settings:
        results["consume_per_s"] = round(_measure_consume(settings, args.messages, state, chain=False))
    with temporary_vhost("hbbench") as settings:
        results["consume_publish_ack_per_s"] = round(
            _measure_consume(settings, min(args.messages, 10_000), state, chain=True))
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
