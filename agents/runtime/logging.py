"""structlog configuration: JSON lines, per-message context, secrets redacted.

Every log line carries what the consumer binds per message (wave_id,
mailbox_id, event_id, event_type, attempt). The redaction processor replaces
the value of any key that names a secret — at any depth — and scrubs bearer
tokens and `password=` pairs out of free text, so an exception message that
quotes a connection string cannot leak it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog

__all__ = ["REDACTED", "configure_logging", "redact"]

REDACTED = "***"
_SECRET_KEY = re.compile(
    r"pass(word)?|secret|token|authori[sz]ation|unicodepwd|credential|api[_-]?key", re.IGNORECASE
)
_SECRET_TEXT = [
    (re.compile(r"(?i)\b(bearer|basic|negotiate|ntlm)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)\b(password|passwd|pwd|secret|token|client_secret)=([^&\s;,]+)"), r"\1=" + REDACTED),
    (re.compile(r"(amqps?|ldaps?|https?|postgres(ql)?)://([^:/@\s]+):([^@\s]+)@"),
     r"\1://\3:" + REDACTED + "@"),
]


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for pattern, replacement in _SECRET_TEXT:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else _scrub(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no secret leaves the process through a log line."""
    for key in list(event_dict):
        if _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the moment of writing.

    Binding the stream at configuration time breaks as soon as someone swaps
    sys.stderr (a test runner's capture, a daemon redirect) and closes the old
    one: every later log call would raise, inside handlers.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(level: str = "info", fmt: str = "json", *, stream: Any = None) -> None:
    """Configure structlog (and the stdlib loggers of pika, ldap3, httpx) once per process."""
    target = stream if stream is not None else _CurrentStderr()
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=target.isatty()))
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, target)),
        cache_logger_on_first_use=False,
    )
    # Libraries log through the stdlib: keep their noise down and route it to the same stream.
    handler = logging.StreamHandler(target)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    for noisy in ("pika", "httpx", "httpcore", "msal", "urllib3", "ldap3"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
