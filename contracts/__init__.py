"""The language of Homebound: events, state machines and RabbitMQ names. No I/O here."""

from contracts.envelope import SCHEMA_VERSION, Event, Payload, follow, new_event
from contracts.events import EVENT_MODELS, UnknownEventType, parse_event

__all__ = [
    "EVENT_MODELS",
    "SCHEMA_VERSION",
    "Event",
    "Payload",
    "UnknownEventType",
    "follow",
    "new_event",
    "parse_event",
]
