"""Helpers for tests against the real broker: a throw-away vhost per test."""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from events.admin import BrokerAdmin
from events.amqp import AmqpSettings

__all__ = ["amqp_url_from_env", "temporary_vhost"]


def amqp_url_from_env() -> str:
    return os.environ.get("HOMEBOUND_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _management_url(amqp_url: str) -> str:
    host = urllib.parse.urlparse(amqp_url).hostname or "127.0.0.1"
    return os.environ.get("HOMEBOUND_RABBITMQ_API", f"http://{host}:15672")


@contextmanager
def temporary_vhost(prefix: str = "hbtest") -> Iterator[AmqpSettings]:
    """A new vhost for the duration of the block, removed afterwards with everything in it."""
    base = amqp_url_from_env()
    parsed = urllib.parse.urlparse(base)
    vhost = f"{prefix}-{uuid.uuid4().hex[:12]}"
    with BrokerAdmin(_management_url(base), username=parsed.username or "guest",
                     password=parsed.password or "guest") as admin:
        admin.create_vhost(vhost, user=parsed.username or "guest")
        try:
            url = urllib.parse.urlunparse(parsed._replace(path="/" + urllib.parse.quote(vhost, safe="")))
            yield AmqpSettings(url=url)
        finally:
            admin.delete_vhost(vhost)
