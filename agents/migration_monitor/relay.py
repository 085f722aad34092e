"""Publishing the ledger's outbox: events to the exchange, dead letters to our queue."""

from __future__ import annotations

import threading

import structlog

from agents.migration_monitor.ledger import Ledger
from contracts.events import parse_event
from events.publisher import Publisher, event_properties

__all__ = ["OutboxRelay"]

log = structlog.get_logger(__name__)


class OutboxRelay:
    def __init__(self, ledger: Ledger, publisher: Publisher) -> None:
        self._ledger = ledger
        self._publisher = publisher
        self._lock = threading.Lock()  # one relay pass at a time keeps the order

    def flush(self) -> int:
        """Publish every pending row (confirmed), then delete them; returns how many."""
        sent = 0
        with self._lock:
            while rows := self._ledger.pending_outbox():
                futures = []
                for row in rows:
                    event = parse_event(row.body)
                    props = event_properties(event, user_id=self._publisher.user_id, headers=row.headers)
                    futures.append(
                        self._publisher.publish_raw(row.exchange, row.routing_key, row.body, props)
                    )
                self._publisher.wait(futures)
                self._ledger.delete_outbox([row.seq for row in rows])
                sent += len(rows)
        if sent:
            log.debug("outbox.published", count=sent)
        return sent
