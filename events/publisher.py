"""A thread-safe publisher that keeps many confirms in flight.

pika's BlockingConnection waits for each confirm in turn (~1,400 msg/s per
channel here); the exporter publishes thousands of events per wave. So the
publisher owns a SelectConnection on its own I/O thread: callers on any thread
hand messages over and get a Future resolved by the broker's confirm, up to
`max_in_flight` unconfirmed at once (~18,000 msg/s, PROTOCOLS.md).

Every message is persistent and published with `mandatory=True`: a message no
queue takes comes back as a basic.return and its Future fails with
UnroutableError instead of being confirmed and lost. When the connection
drops, unconfirmed messages go back to the head of the outbox and are sent
again after reconnecting; consumers dedupe by event id, so a repeat is
harmless and a loss is impossible.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.channel
import pika.exceptions
import pika.frame
import pika.spec
import structlog
from pika.adapters.select_connection import SelectConnection

from contracts.envelope import Event
from contracts.topology import EVENTS_EXCHANGE
from events.amqp import AmqpSettings
from events.errors import PublishError, UnroutableError

__all__ = ["Publisher", "event_properties"]

log = structlog.get_logger(__name__)


def event_properties(
    event: Event, *, user_id: str | None, headers: dict[str, Any] | None = None
) -> pika.BasicProperties:
    """The AMQP properties every event carries."""
    return pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=str(event.event_id),
        correlation_id=str(event.correlation_id),
        type=event.type,
        app_id=event.producer[:64],
        user_id=user_id,
        timestamp=int(event.occurred_at.timestamp()),
        headers=headers or {},
    )


@dataclass
class _Outgoing:
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties
    future: Future[None] = field(default_factory=Future)

    @property
    def return_key(self) -> tuple[str | None, str]:
        return (self.properties.message_id, self.routing_key)


class Publisher:
    """Publish confirmed, persistent, mandatory messages from any thread."""

    def __init__(
        self, settings: AmqpSettings, *, max_in_flight: int = 1000,
        confirm_timeout: float = 60.0, connect_timeout: float = 300.0,
    ) -> None:
        self._settings = settings
        self._max_in_flight = max_in_flight
        self._confirm_timeout = confirm_timeout
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._outbox: collections.deque[_Outgoing] = collections.deque()
        self._unconfirmed: dict[int, _Outgoing] = {}
        self._returned: set[tuple[str | None, str]] = set()
        self._next_tag = 0
        self._connection: SelectConnection | None = None
        self._channel: pika.channel.Channel | None = None
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    # ------------------------------------------------------------------ public API

    @property
    def user_id(self) -> str:
        return self._settings.username

    def start(self) -> Publisher:
        """Start the I/O thread; returns once the channel is open (or raises after the timeout)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="amqp-publisher", daemon=True)
            self._thread.start()
        if not self._ready.wait(self._connect_timeout):
            raise PublishError(
                f"could not reach RabbitMQ at {self._settings.redacted_url()} "
                f"within {self._connect_timeout:.0f} s"
            )
        return self

    def publish(self, event: Event, *, headers: dict[str, Any] | None = None) -> Future[None]:
        """Publish *event* to the events exchange, routed by its type."""
        props = event_properties(event, user_id=self.user_id, headers=headers)
        return self.publish_raw(EVENTS_EXCHANGE, event.type, event.to_json(), props)

    def publish_raw(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties
    ) -> Future[None]:
        """Publish a prepared message (retry copies, dead letters, timers)."""
        if self._closing.is_set():
            raise PublishError("publisher is closed")
        properties.user_id = self.user_id
        if properties.delivery_mode is None:
            properties.delivery_mode = pika.DeliveryMode.Persistent.value
        outgoing = _Outgoing(exchange, routing_key, body, properties)
        with self._lock:
            self._outbox.append(outgoing)
            connection = self._connection
        if connection is not None and self._ready.is_set():
            # closing under us: the reconnect drains the outbox instead
            with contextlib.suppress(Exception):
                connection.ioloop.add_callback_threadsafe(self._drain)
        return outgoing.future

    def publish_events(self, events: Iterable[Event], *, timeout: float | None = None) -> int:
        """Publish all *events* and wait until the broker confirmed every one."""
        futures = [self.publish(event) for event in events]
        self.wait(futures, timeout=timeout)
        return len(futures)

    def wait(self, futures: Iterable[Future[None]], *, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else self._confirm_timeout)
        for future in futures:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout as exc:
                raise PublishError("the broker did not confirm in time") from exc

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is queued (up to *timeout*), then close the connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._outbox and not self._unconfirmed:
                    break
            time.sleep(0.01)
        self._closing.set()
        with self._lock:
            connection = self._connection
        if connection is not None:
            with contextlib.suppress(Exception):  # already closed
                connection.ioloop.add_callback_threadsafe(self._close_connection)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._fail_everything(PublishError("publisher closed before the broker confirmed"))

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ I/O thread

    def _run(self) -> None:
        backoff = 0.25
        started = time.monotonic()
        while not self._closing.is_set():
            self._opened_this_round = False
            connection = SelectConnection(
                self._settings.parameters(),
                on_open_callback=self._on_connection_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_connection_closed,
            )
            with self._lock:
                self._connection = connection
            connection.ioloop.start()  # returns when the connection is gone
            with self._lock:
                self._connection = None
                self._channel = None
            self._ready.clear()
            self._requeue_unconfirmed()
            if self._closing.is_set():
                break
            if self._opened_this_round:
                backoff = 0.25
            elif not self._ever_connected and time.monotonic() - started > self._connect_timeout:
                self._failure = PublishError("RabbitMQ unreachable")
                break
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
        self._fail_everything(self._failure or PublishError("publisher stopped"))

    _ever_connected = False
    _opened_this_round = False

    def _on_connection_open(self, connection: pika.connection.Connection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, connection: pika.connection.Connection, error: BaseException | str) -> None:
        log.warning("amqp.publisher.connect_failed", error=str(error)[:200])
        connection.ioloop.stop()

    def _on_connection_closed(self, connection: pika.connection.Connection, reason: BaseException) -> None:
        if not self._closing.is_set():
            log.warning("amqp.publisher.connection_lost", reason=str(reason)[:200])
        connection.ioloop.stop()

    def _on_channel_open(self, channel: pika.channel.Channel) -> None:
        self._channel = channel
        channel.add_on_return_callback(self._on_return)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm)
        self._next_tag = 0
        self._ever_connected = self._opened_this_round = True
        self._ready.set()
        self._drain()

    def _on_channel_closed(self, channel: pika.channel.Channel, reason: BaseException) -> None:
        # e.g. 404 on a publish to a missing exchange: close the connection and start over
        if self._closing.is_set():
            return
        log.warning("amqp.publisher.channel_closed", reason=str(reason)[:200])
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.close()

    def _drain(self) -> None:
        channel = self._channel
        if channel is None or not channel.is_open:
            return
        while True:
            with self._lock:
                if not self._outbox or len(self._unconfirmed) >= self._max_in_flight:
                    return
                outgoing = self._outbox.popleft()
                self._next_tag += 1
                self._unconfirmed[self._next_tag] = outgoing
            try:
                channel.basic_publish(
                    outgoing.exchange, outgoing.routing_key, outgoing.body,
                    properties=outgoing.properties, mandatory=True,
                )
            except (pika.exceptions.ChannelWrongStateError, pika.exceptions.ConnectionWrongStateError):
                return  # the connection is going away; the reconnect resends it
            except Exception as exc:  # noqa: BLE001 - a bad message must not kill the I/O thread
                with self._lock:
                    self._unconfirmed.pop(self._next_tag, None)
                    self._next_tag -= 1
                outgoing.future.set_exception(PublishError(f"cannot publish: {exc}"))

    def _on_return(
        self, channel: pika.channel.Channel, method: pika.spec.Basic.Return,
        properties: pika.BasicProperties, body: bytes,
    ) -> None:
        # basic.return precedes the basic.ack of the same message
        with self._lock:
            self._returned.add((properties.message_id, method.routing_key))

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tag = method.delivery_tag
        with self._lock:
            tags = [t for t in self._unconfirmed if t <= tag] if method.multiple else [tag]
            settled = [self._unconfirmed.pop(t) for t in tags if t in self._unconfirmed]
            returned = [o for o in settled if o.return_key in self._returned]
            for outgoing in returned:
                self._returned.discard(outgoing.return_key)
        for outgoing in settled:
            if not acked:
                outgoing.future.set_exception(PublishError("the broker refused the message (nack)"))
            elif outgoing in returned:
                outgoing.future.set_exception(UnroutableError(
                    f"no queue is bound for {outgoing.exchange!r} / {outgoing.routing_key!r}"
                ))
            else:
                outgoing.future.set_result(None)
        self._drain()

    def _requeue_unconfirmed(self) -> None:
        with self._lock:
            pending = [self._unconfirmed[t] for t in sorted(self._unconfirmed)]
            self._unconfirmed.clear()
            self._returned.clear()
            self._outbox.extendleft(reversed(pending))
        if pending:
            log.info("amqp.publisher.resending", count=len(pending))

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is not None and (connection.is_open or connection.is_opening):
            connection.close()

    def _fail_everything(self, error: BaseException) -> None:
        with self._lock:
            doomed = list(self._outbox) + list(self._unconfirmed.values())
            self._outbox.clear()
            self._unconfirmed.clear()
        for outgoing in doomed:
            if not outgoing.future.done():
                outgoing.future.set_exception(error)
