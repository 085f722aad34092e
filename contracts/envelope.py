"""The envelope every event travels in.

One JSON object per message::

    {"event_id": "…", "type": "mailbox.provisioned", "schema_version": 1,
     "wave_id": "w-…", "mailbox_id": "…", "correlation_id": "…",
     "causation_id": "…", "occurred_at": "2026-12-04T20:00:00Z",
     "producer": "ad-provisioner", "data": {…}}

`correlation_id` is the event id of the `wave.requested` that started the
chain; `causation_id` the event that caused this one. A follow-up event made
with :func:`follow` gets an id derived from its cause, so a handler that runs
twice for the same cause publishes the same ids and the consumers' dedupe
absorbs the repeat.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.fields import ShortText, WaveId

__all__ = ["SCHEMA_VERSION", "Event", "Payload", "follow", "new_event", "utcnow"]

SCHEMA_VERSION = 1

# A fixed namespace so derived event ids are stable across processes and releases.
_DERIVED_ID_NAMESPACE = uuid.UUID("6f1d3c52-3c2e-4f55-9a55-4c8d3b7e2a10")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base of every event's `data`: strict, immutable, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=8192)


class Event(BaseModel):
    """The envelope; each event type subclasses it with a `Literal` type and its payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Subclasses about one mailbox set this, and then mailbox_id is required.
    about_mailbox: ClassVar[bool] = False

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    wave_id: WaveId
    mailbox_id: uuid.UUID | None = Field(
        default=None, description="The cloud ExchangeGuid of the mailbox this event is about"
    )
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    producer: ShortText
    data: Payload

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _mailbox_events_name_their_mailbox(self) -> Self:
        if self.about_mailbox and self.mailbox_id is None:
            raise ValueError(f"{self.type} events must carry a mailbox_id")
        return self

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


E = TypeVar("E", bound=Event)


def new_event(
    model: type[E], *, wave_id: str, producer: str, data: Payload,
    mailbox_id: uuid.UUID | None = None, **envelope: Any,
) -> E:
    """Start a new chain (a command from the CLI, a timer): correlation_id = own id."""
    event_id = envelope.pop("event_id", None) or uuid.uuid4()
    return model(
        event_id=event_id, wave_id=wave_id, producer=producer, data=data,
        mailbox_id=mailbox_id, correlation_id=envelope.pop("correlation_id", event_id),
        **envelope,
    )


def follow(
    cause: Event, model: type[E], *, producer: str, data: Payload,
    mailbox_id: uuid.UUID | None = None, key: str = "",
) -> E:
    """The event *cause* leads to; its id is derived from the cause (see module doc).

    *key* distinguishes several events of one type from one cause (one
    `mailbox.syncing` per mailbox from one poll, say).
    """
    mailbox_id = mailbox_id if mailbox_id is not None else cause.mailbox_id
    type_name = model.model_fields["type"].default
    name = f"{cause.event_id}/{type_name}/{mailbox_id or ''}/{key}"
    return model(  # type: ignore[call-arg]  # `type` defaults to the model's literal
        event_id=uuid.uuid5(_DERIVED_ID_NAMESPACE, name),
        wave_id=cause.wave_id,
        mailbox_id=mailbox_id,
        correlation_id=cause.correlation_id,
        causation_id=cause.event_id,
        producer=producer,
        data=data,
    )
