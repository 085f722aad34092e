"""Running one agent: build its ports and handler, consume until told to stop.

An agent package exposes `build(config, publisher) -> AgentDefinition`; this
module is the only place that wires the real world (broker connections,
dedupe store, signals, metrics) around it. Nothing happens at import time.
"""

from __future__ import annotations

import importlib
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType

import structlog

from agents.runtime.config import HomeboundConfig
from contracts.topology import BINDINGS, MONITOR_POLL_DELAYS, Agent
from events.amqp import AmqpSettings
from events.consumer import Consumer, ConsumerOptions, Route
from events.dedupe import DedupeStore, SqliteDedupe
from events.publisher import Publisher

__all__ = ["AGENT_FACTORIES", "AgentDefinition", "amqp_settings", "build_consumer", "run_agent"]

log = structlog.get_logger(__name__)


@dataclass
class AgentDefinition:
    """What an agent's factory returns: its routes and how to release its clients."""

    routes: Mapping[str, Route]
    close: Callable[[], None] = lambda: None
    dedupe: DedupeStore | None = None  # None: the runtime's SQLite store in state_dir
    # An agent that batches work across concurrent messages needs as many workers
    # (and prefetched messages) as its batch size; None keeps [runtime] workers/prefetch.
    workers: int | None = None
    prefetch: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


AgentFactory = Callable[[HomeboundConfig, Publisher], AgentDefinition]

# name -> "module:function", imported only when that agent runs
AGENT_FACTORIES: dict[str, str] = {
    Agent.CLOUD_EXPORTER.value: "agents.cloud_exporter.factory:build",
    Agent.AD_PROVISIONER.value: "agents.ad_provisioner.factory:build",
    Agent.EXCHANGE_CONFIGURATOR.value: "agents.exchange_configurator.factory:build",
    Agent.MIGRATION_MONITOR.value: "agents.migration_monitor.factory:build",
    Agent.DNS_CUTOVER.value: "agents.dns_cutover.factory:build",
}


def load_factory(name: str) -> AgentFactory:
    module_name, _, function = AGENT_FACTORIES[name].partition(":")
    factory: AgentFactory = getattr(importlib.import_module(module_name), function)
    return factory


def amqp_settings(config: HomeboundConfig, client_name: str) -> AmqpSettings:
    section = config.amqp
    return AmqpSettings(
        url=section.url,
        password=section.password.get_secret_value() if section.password else None,
        heartbeat=section.heartbeat,
        ca_file=str(section.ca_file) if section.ca_file else None,
        client_name=client_name,
    )


def build_consumer(
    name: str, config: HomeboundConfig, publisher: Publisher, definition: AgentDefinition
) -> Consumer:
    agent = Agent(name)
    runtime = config.runtime
    dedupe = definition.dedupe or SqliteDedupe(runtime.state_dir / name / "handled-events.sqlite")
    workers = definition.workers or runtime.workers
    options = ConsumerOptions(
        prefetch=max(definition.prefetch or runtime.prefetch, workers), workers=workers,
        retry_delays=tuple(runtime.retry_delays),
        timer_delays=MONITOR_POLL_DELAYS if agent is Agent.MIGRATION_MONITOR else (),
        single_active_consumer=agent is Agent.MIGRATION_MONITOR,
        max_body_bytes=runtime.max_body_bytes,
    )
    return Consumer(name, BINDINGS[agent], definition.routes,
                    settings=amqp_settings(config, f"homebound {name}"),
                    publisher=publisher, dedupe=dedupe, options=options)


def run_agent(name: str, config: HomeboundConfig, *, ready: threading.Event | None = None) -> int:
    """Run agent *name* until SIGTERM/SIGINT; returns the process exit code."""
    factory = load_factory(name)
    publisher = Publisher(amqp_settings(config, f"homebound {name} publisher"))
    publisher.start()
    definition = factory(config, publisher)
    consumer = build_consumer(name, config, publisher, definition)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("agent.stopping", agent=name, signal=signal.Signals(signum).name)
        consumer.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    if config.runtime.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.runtime.metrics_port, addr="127.0.0.1")
    if ready is not None:
        def announce_ready() -> None:
            consumer.consuming.wait()
            ready.set()

        threading.Thread(target=announce_ready, daemon=True).start()
    log.info("agent.starting", agent=name, queue=consumer.names.work)
    try:
        consumer.run()
    finally:
        definition.close()
        publisher.close()
    log.info("agent.stopped", agent=name)
    return 0
