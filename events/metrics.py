"""Prometheus metrics of the runtime (exposed by `homebound agent --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["DEAD_LETTERED", "DUPLICATES", "HANDLED", "HANDLER_SECONDS", "RETRIED"]

HANDLED = Counter(
    "homebound_events_handled_total", "Events handled successfully", ["consumer", "type"]
)
DUPLICATES = Counter(
    "homebound_events_duplicate_total", "Events acked as already handled", ["consumer", "type"]
)
RETRIED = Counter(
    "homebound_events_retried_total", "Events sent to a retry delay queue", ["consumer", "type"]
)
DEAD_LETTERED = Counter(
    "homebound_events_dead_lettered_total", "Messages sent to the dead-letter queue", ["consumer", "reason"]
)
HANDLER_SECONDS = Histogram(
    "homebound_handler_seconds", "Time spent in handlers", ["consumer", "type"],
    buckets=(0.005, 0.02, 0.1, 0.5, 1, 2.5, 5, 15, 60, 300),
)
