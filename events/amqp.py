"""Connecting to RabbitMQ: parameters from a URL, and connecting with backoff."""

from __future__ import annotations

import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pika
import pika.exceptions
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

__all__ = ["CONNECTION_ERRORS", "AmqpSettings", "connect_blocking", "with_reconnect_backoff"]

log = structlog.get_logger(__name__)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"

# What a lost or refused connection looks like from pika's side.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,  # refused, closed by broker (320), stream lost...
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ChannelWrongStateError,
    pika.exceptions.ChannelClosedByBroker,
    ConnectionError,
    OSError,
)


@dataclass(frozen=True)
class AmqpSettings:
    """Where the broker is and how this process identifies itself to it."""

    url: str = DEFAULT_URL
    password: str | None = None  # overrides the URL's password (from a *_FILE secret)
    heartbeat: int = 30
    ca_file: str | None = None  # for amqps://
    client_name: str = "homebound"

    def parameters(self) -> pika.URLParameters:
        params = pika.URLParameters(self.url)
        if self.password is not None:
            username = getattr(params.credentials, "username", "guest")
            params.credentials = pika.PlainCredentials(username, self.password)
        params.heartbeat = self.heartbeat
        params.blocked_connection_timeout = 60
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.client_properties = {"connection_name": self.client_name}
        if self.url.startswith("amqps://"):
            context = ssl.create_default_context(cafile=self.ca_file)
            params.ssl_options = pika.SSLOptions(context, params.host)
        return params

    @property
    def username(self) -> str:
        return urllib.parse.unquote(urllib.parse.urlparse(self.url).username or "guest")

    @property
    def vhost(self) -> str:
        path = urllib.parse.urlparse(self.url).path
        return urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"

    def redacted_url(self) -> str:
        parsed = urllib.parse.urlparse(self.url)
        netloc = parsed.hostname or ""
        if parsed.port:
            netloc += f":{parsed.port}"
        if parsed.username:
            netloc = f"{parsed.username}:***@{netloc}"
        return urllib.parse.urlunparse(parsed._replace(netloc=netloc))

    def with_client_name(self, name: str) -> AmqpSettings:
        return AmqpSettings(self.url, self.password, self.heartbeat, self.ca_file, name)


T = TypeVar("T")


def with_reconnect_backoff(
    action: Callable[[], T], *, what: str, give_up_after: float = 300.0
) -> T:
    """Run *action* until it stops raising connection errors: 0.25 s doubling to 5 s."""

    def announce(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("amqp.unreachable", action=what, attempt=state.attempt_number,
                    error=type(error).__name__ if error else None)

    retrying = Retrying(
        retry=retry_if_exception_type(CONNECTION_ERRORS),
        wait=wait_exponential(multiplier=0.25, max=5),
        stop=stop_after_delay(give_up_after),
        before_sleep=announce,
        reraise=True,
    )
    return retrying(action)


def connect_blocking(settings: AmqpSettings, *, give_up_after: float = 300.0) -> pika.BlockingConnection:
    """A BlockingConnection, retried with backoff while the broker is unreachable."""
    return with_reconnect_backoff(
        lambda: pika.BlockingConnection(settings.parameters()),
        what=f"connect to {settings.redacted_url()}", give_up_after=give_up_after,
    )
