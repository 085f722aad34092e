"""How a handler says what kind of failure it met.

    HandlerError                  base: carries the error class and a remediation hint
    ├── TransientError            retried through the delay queues, then dead-lettered
    ├── PermanentError            dead-lettered at once; fix the cause, then replay
    └── NeedsHumanError           dead-lettered at once; a decision is needed first
    InvalidMessage                not a handler failure: the message itself is unusable
    PublishError                  the broker did not confirm a publish
    └── UnroutableError           no queue was bound for the routing key (mandatory)

Any other exception escaping a handler is treated as transient: it is retried
and, if it keeps failing, dead-lettered with its type and message, never lost.
"""

from __future__ import annotations

from contracts.events import ErrorClass

__all__ = [
    "HandlerError",
    "InvalidMessage",
    "NeedsHumanError",
    "PermanentError",
    "PublishError",
    "TransientError",
    "UnroutableError",
]


class HandlerError(Exception):
    error_class: ErrorClass = ErrorClass.TRANSIENT

    def __init__(self, reason: str, *, remediation: str = "", error_type: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.remediation = remediation
        self.error_type = error_type or type(self).__name__


class TransientError(HandlerError):
    error_class = ErrorClass.TRANSIENT


class PermanentError(HandlerError):
    error_class = ErrorClass.PERMANENT


class NeedsHumanError(HandlerError):
    error_class = ErrorClass.NEEDS_HUMAN


class InvalidMessage(Exception):
    """Undecodable, too large, unknown type, failed validation or an invalid transition."""

    def __init__(self, reason: str, *, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # undecodable | too-large | unknown-type | invalid | invalid-transition


class PublishError(Exception):
    """The broker nacked the message or the connection was lost beyond recovery."""


class UnroutableError(PublishError):
    """Published with mandatory=True and returned: no queue is bound for it."""
