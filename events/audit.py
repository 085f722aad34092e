"""Reading the audit stream: every event ever published, from any offset, live."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from contracts.topology import AUDIT_STREAM
from events.amqp import AmqpSettings, connect_blocking
from events.declare import declare

__all__ = ["tail_audit"]


def tail_audit(
    settings: AmqpSettings, on_event: Callable[[dict[str, Any], int], bool | None], *,
    offset: str | int = "first", follow: bool = False, idle_timeout: float = 1.0,
    stop: threading.Event | None = None,
) -> int:
    """Call *on_event(event, offset)* for each event from *offset*; returns how many were read.

    *offset* is what RabbitMQ streams accept: "first", "last", "next", an
    integer offset, or an interval such as "30m". Without *follow*, stops once
    the stream has been idle for *idle_timeout* seconds. *on_event* may return
    True to stop early.
    """
    stop = stop or threading.Event()
    connection = connect_blocking(settings.with_client_name("homebound audit tail"), give_up_after=15)
    count = 0
    try:
        channel = connection.channel()
        declare(channel, [])
        channel.basic_qos(prefetch_count=500)  # mandatory for streams
        arguments = {"x-stream-offset": offset}
        for method, _props, body in channel.consume(
            AUDIT_STREAM, auto_ack=False, arguments=arguments, inactivity_timeout=idle_timeout
        ):
            if method is None:
                if not follow or stop.is_set():
                    break
                continue
            channel.basic_ack(method.delivery_tag)  # credit, not deletion: streams keep everything
            try:
                event = json.loads(body)
            except ValueError:
                continue
            count += 1
            stream_offset = int((_props.headers or {}).get("x-stream-offset", -1))
            if on_event(event, stream_offset) or stop.is_set():
                break
        channel.cancel()
    finally:
        if connection.is_open:
            connection.close()
    return count
