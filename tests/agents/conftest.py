from __future__ import annotations

from collections.abc import Iterator

import pytest

from events.amqp import AmqpSettings
from events.testing import temporary_vhost


@pytest.fixture
def broker() -> Iterator[AmqpSettings]:
    """A fresh vhost on the real RabbitMQ ($HOMEBOUND_AMQP_URL) for one test."""
    with temporary_vhost() as settings:
        yield settings
