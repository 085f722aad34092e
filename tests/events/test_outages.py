"""Broker restarts and process signals: nothing lost, nothing done twice."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from contracts.events import MailboxDiscovered
from contracts.topology import queues_for
from events.admin import BrokerAdmin
from events.amqp import AmqpSettings
from events.consumer import ConsumerOptions
from tests.events.broker import discovered, route, running_consumer

REPO = Path(__file__).resolve().parents[2]


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


@pytest.mark.chaos
def test_a_broker_restart_while_a_thousand_messages_flow_loses_none_and_repeats_no_effect(
    broker: AmqpSettings,
) -> None:
    effects: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def provision(event: MailboxDiscovered, context: Any) -> None:
        time.sleep(0.002)
        with lock:
            effects[str(event.event_id)] += 1

    events = [discovered(n) for n in range(1000)]
    options = ConsumerOptions(retry_delays=(0.5,), workers=8, prefetch=50)
    with running_consumer(broker, {"mailbox.discovered": route(provision)}, options=options) as (
        _,
        publisher,
    ):

        def publish_slowly() -> None:
            for start in range(0, len(events), 50):
                publisher.publish_events(events[start : start + 50], timeout=120)
                time.sleep(0.05)

        producer = threading.Thread(target=publish_slowly)
        producer.start()
        time.sleep(0.6)
        _rabbitmqctl("stop_app")
        time.sleep(2)
        _rabbitmqctl("start_app")
        _rabbitmqctl("await_startup")
        producer.join(120)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(effects) < len(events):
            time.sleep(0.2)
    assert len(effects) == len(events), f"{len(events) - len(effects)} messages never handled"
    repeated = {event_id: n for event_id, n in effects.items() if n != 1}
    assert repeated == {}


def test_sigterm_during_a_slow_handler_lets_it_finish_ack_and_exit_zero(
    broker: AmqpSettings,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker"
    env = {**os.environ, "HOMEBOUND_AMQP_URL": broker.url, "PYTHONPATH": str(REPO)}
    agent = subprocess.Popen(
        [sys.executable, "-m", "tests.events.slow_agent", str(marker)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (marker.exists() and marker.read_text() == "consuming"):
            assert time.monotonic() < deadline and agent.poll() is None, (
                agent.stdout.read() if agent.stdout else ""
            )
            time.sleep(0.05)
        from events.publisher import Publisher

        with Publisher(broker) as publisher:
            publisher.publish_events([discovered()])
        while marker.read_text() != "started":
            assert time.monotonic() < deadline + 10
            time.sleep(0.02)
        agent.send_signal(signal.SIGTERM)
        output, _ = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, output
    assert marker.read_text() == "finished"
    with BrokerAdmin() as admin:
        deadline = time.monotonic() + 15
        while True:  # the management API's counters lag a few seconds behind
            queue = admin.queue(broker.vhost, queues_for("slow-agent").work)
            if queue.get("messages", 1) == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert queue["messages"] == 0, "the message was not acked before exit"
