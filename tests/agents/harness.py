"""Running a real agent (its factory, its real adapters) against a test vhost.

    with running_agent("ad-provisioner", config, broker) as agent:
        agent.publisher.publish_events([event])
        published = agent.spy.collect(lambda seen: any(e["type"] == "mailbox.provisioned" for e in seen))
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agents.runtime.config import HomeboundConfig, RuntimeSection
from agents.runtime.runner import AgentDefinition, build_consumer, load_factory
from events.amqp import AmqpSettings
from events.consumer import Consumer
from events.publisher import Publisher
from tests.events.broker import Spy


@dataclass
class RunningAgent:
    consumer: Consumer
    publisher: Publisher
    spy: Spy
    definition: AgentDefinition  # the agent's routes and its adapters' counters


def config_for(broker: AmqpSettings, state_dir: Path, **sections: object) -> HomeboundConfig:
    """A configuration whose [amqp] points at the test vhost and whose state lives in *state_dir*."""
    return HomeboundConfig.model_validate({
        "amqp": {"url": broker.url},
        "runtime": RuntimeSection(state_dir=state_dir, retry_delays=[0.5, 1.0], workers=4).model_dump(),
        **{name: (section.model_dump() if hasattr(section, "model_dump") else section)
           for name, section in sections.items()},
    })


@contextmanager
def running_agent(name: str, config: HomeboundConfig, broker: AmqpSettings,
                  spy_binding: str = "#") -> Iterator[RunningAgent]:
    spy = Spy(broker, spy_binding)
    publisher = Publisher(broker).start()
    definition = load_factory(name)(config, publisher)
    consumer = build_consumer(name, config, publisher, definition)
    thread = threading.Thread(target=consumer.run, daemon=True, name=f"agent-{name}")
    thread.start()
    assert consumer.consuming.wait(30), f"{name} did not start consuming"
    try:
        yield RunningAgent(consumer, publisher, spy, definition)
    finally:
        consumer.stop()
        thread.join(60)
        definition.close()
        publisher.close()
        spy.close()
