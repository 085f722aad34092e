"""The consumer: decode -> validate -> dedupe -> handle -> publish next -> ack.

One BlockingConnection on the thread that calls `run()` receives messages;
handlers run in a thread pool, so a slow handler never blocks heartbeats. A
worker finishes everything a message needs — effects, follow-up events,
retry or dead-letter copies, all confirmed by the broker — and only then
hands the ack back to the connection's thread with
`add_callback_threadsafe`. Nothing is acked before its effect is done.

Failures:
* transient (TransientError or any unexpected exception): a copy goes to the
  retry queue of the next delay tier with the attempt count in a header, then
  the original is acked; the copy dead-letters back to the work queue when
  its TTL expires. When the tiers are used up it is dead-lettered.
* permanent / needs-human: dead-lettered at once.
* unusable message (not JSON, too large, unknown type, invalid, impossible
  state transition): dead-lettered with the reason; the consumer goes on.
A dead-lettered handler failure is announced with `mailbox.failed` (or
`wave.failed` for a wave-level event) carrying the step and error class.

After a reconnect, delivery tags from the old connection are never acked
(they would close the new channel); the broker redelivers those messages and
the dedupe store recognises the ones whose effects were already done.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import json
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import pika
import pika.exceptions
import pydantic
import structlog
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from contracts.envelope import Event, Payload, follow
from contracts.events import (
    ErrorClass,
    MailboxFailed,
    MailboxFailedData,
    Step,
    UnknownEventType,
    WaveFailed,
    WaveFailedData,
    parse_event,
)
from contracts.topology import (
    DEFAULT_DELIVERY_LIMIT,
    DEFAULT_RETRY_DELAYS,
    Header,
    consumer_queues,
    queues_for,
)
from events import metrics
from events.amqp import CONNECTION_ERRORS, AmqpSettings, connect_blocking
from events.declare import declare
from events.dedupe import DedupeStore, InFlight
from events.errors import HandlerError, InvalidMessage, PublishError
from events.publisher import Publisher, event_properties

__all__ = ["Consumer", "ConsumerOptions", "Context", "Handler", "Route", "dead_letter_headers"]

log = structlog.get_logger(__name__)

ONE_MIB = 1024 * 1024
E = TypeVar("E", bound=Event)


class Handler(Protocol):
    def __call__(self, event: Any, context: Context, /) -> Iterable[Event] | None: ...


@dataclass(frozen=True)
class Route:
    """What to do with one event type, and the procedure step it belongs to."""

    handler: Handler
    step: Step


@dataclass(frozen=True)
class ConsumerOptions:
    prefetch: int = 32
    workers: int = 8
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    timer_delays: tuple[float, ...] = ()
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    single_active_consumer: bool = False
    max_body_bytes: int = 4 * ONE_MIB  # a wave of 50,000 listed mailboxes is about 2 MiB
    shutdown_grace_seconds: float = 120.0


class Context:
    """What a handler gets besides the event: publishing and its own timers."""

    def __init__(
        self, event: Event, *, producer: str, attempt: int, replayed: int,
        publisher: Publisher, timer_queue: Callable[[float], str], own_queue: str = "",
    ) -> None:
        self.event = event
        self.producer = producer
        self.attempt = attempt  # failed attempts before this one
        self.replayed = replayed  # times an operator replayed this event
        self._publisher = publisher
        self._timer_queue = timer_queue
        self._own_queue = own_queue

    def follow(self, model: type[E], data: Payload, *, mailbox_id: Any = None, key: str = "") -> E:
        """A follow-up event of this one (derived id: a rerun publishes the same ids)."""
        return follow(self.event, model, producer=self.producer, data=data,
                      mailbox_id=mailbox_id, key=key)

    def publish(self, *events: Event) -> None:
        """Publish now and wait for every confirm (use for progress within a long handler)."""
        self._publisher.publish_events(events)

    def schedule(self, event: Event, delay_seconds: float) -> None:
        """Deliver *event* to this consumer's own queue after one of its timer delays."""
        props = event_properties(event, user_id=self._publisher.user_id)
        self._publisher.wait([self._publisher.publish_raw(
            "", self._timer_queue(delay_seconds), event.to_json(), props)])

    def continue_with(self, event: Event) -> None:
        """Hand *event* to this consumer itself, through its work queue (confirmed): the next
        step of a long job, so no single handler runs for long."""
        props = event_properties(event, user_id=self._publisher.user_id)
        self._publisher.wait([self._publisher.publish_raw("", self._own_queue, event.to_json(), props)])


class _Settlement(enum.Enum):
    ACK = "ack"
    REQUEUE = "requeue"  # not handled (shutting down, or a copy could not be published)


@dataclass
class _Delivery:
    tag: int
    generation: int
    routing_key: str
    redelivered: bool
    properties: pika.BasicProperties
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)


class Consumer:
    def __init__(
        self, name: str, routing_keys: tuple[str, ...], routes: Mapping[str, Route], *,
        settings: AmqpSettings, publisher: Publisher, dedupe: DedupeStore | None,
        options: ConsumerOptions = ConsumerOptions(),
    ) -> None:
        self.name = name
        self.names = queues_for(name)
        self.queues = consumer_queues(
            name, routing_keys, retry_delays=options.retry_delays,
            timer_delays=options.timer_delays, delivery_limit=options.delivery_limit,
            single_active_consumer=options.single_active_consumer,
        )
        self._routes = dict(routes)
        self._settings = settings.with_client_name(f"homebound {name} consumer")
        self._publisher = publisher
        self._dedupe = dedupe
        self._options = options
        self._in_flight = InFlight()
        self._stopping = threading.Event()
        self._generation = 0
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._pending: dict[Future[_Settlement], _Delivery] = {}
        self._pending_lock = threading.Lock()
        self._verdicts: list[tuple[Future[_Settlement], _Delivery, _Settlement]] = []
        self._verdict_lock = threading.Lock()
        self._settle_scheduled = False
        self._executor = ThreadPoolExecutor(options.workers, thread_name_prefix=f"{name}-worker")
        self.consuming = threading.Event()  # set while a consumer is registered (tests wait on it)

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Stop taking messages, finish the handlers in flight, ack, close. Signal-safe."""
        self._stopping.set()

    def run(self) -> None:
        """Consume until `stop()`; reconnects (and redeclares) whenever the broker goes away."""
        backoff = 0.25
        try:
            while not self._stopping.is_set():
                try:
                    self._consume_once()
                    backoff = 0.25
                except CONNECTION_ERRORS as exc:
                    self.consuming.clear()
                    self._generation += 1  # tags of the lost connection are now stale
                    log.warning("amqp.consumer.connection_lost", consumer=self.name,
                                error=f"{type(exc).__name__}: {str(exc)[:200]}")
                    self._close_quietly()
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._close_quietly()

    def _consume_once(self) -> None:
        connection = connect_blocking(self._settings)
        self._connection = connection
        channel = connection.channel()
        self._channel = channel
        declare(channel, self.queues)
        channel.basic_qos(prefetch_count=self._options.prefetch)
        consumer_tag = channel.basic_consume(self.names.work, self._on_message)
        self.consuming.set()
        log.info("amqp.consumer.started", consumer=self.name, queue=self.names.work)
        while not self._stopping.is_set():
            connection.process_data_events(time_limit=0.25)
        self._shut_down_gracefully(connection, channel, consumer_tag)

    def _shut_down_gracefully(
        self, connection: BlockingConnection, channel: BlockingChannel, consumer_tag: str
    ) -> None:
        channel.basic_cancel(consumer_tag)
        self.consuming.clear()
        with self._pending_lock:
            waiting = list(self._pending)
        not_started = sum(1 for future in waiting if future.cancel())
        deadline = time.monotonic() + self._options.shutdown_grace_seconds
        while time.monotonic() < deadline:
            with self._pending_lock:
                if not self._pending:
                    break
            connection.process_data_events(time_limit=0.1)
        connection.process_data_events(time_limit=0)
        log.info("amqp.consumer.stopped", consumer=self.name, returned_unstarted=not_started)
        connection.close()
        self._connection = None

    def _close_quietly(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):  # it is already broken
                connection.close()

    # ------------------------------------------------------------------ connection thread

    def _on_message(
        self, channel: BlockingChannel, method: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties, body: bytes,
    ) -> None:
        delivery = _Delivery(
            tag=method.delivery_tag, generation=self._generation, routing_key=method.routing_key,
            redelivered=bool(method.redelivered), properties=properties, body=body,
            headers=dict(properties.headers or {}),
        )
        future = self._executor.submit(self._process, delivery)
        with self._pending_lock:
            self._pending[future] = delivery
        future.add_done_callback(functools.partial(self._hand_back, delivery))

    def _hand_back(self, delivery: _Delivery, future: Future[_Settlement]) -> None:
        """Worker thread: queue the verdict for the connection's thread.

        Verdicts are batched: one wake-up of the connection's thread settles
        everything that finished meanwhile, instead of one wake-up per message.
        """
        try:
            settlement = future.result()
        except CancelledError:
            settlement = _Settlement.REQUEUE
        except Exception:
            log.exception("amqp.consumer.worker_crashed", consumer=self.name)
            settlement = _Settlement.REQUEUE
        with self._verdict_lock:
            self._verdicts.append((future, delivery, settlement))
            if self._settle_scheduled:
                return
            self._settle_scheduled = True
        connection = self._connection
        try:
            if connection is None:
                raise pika.exceptions.ConnectionWrongStateError("no connection")
            connection.add_callback_threadsafe(self._settle_all)
        except Exception:  # noqa: BLE001 - connection gone: the broker redelivers those messages
            with self._verdict_lock:
                dropped, self._verdicts = self._verdicts, []
                self._settle_scheduled = False
            with self._pending_lock:
                for dropped_future, _, _ in dropped:
                    self._pending.pop(dropped_future, None)

    def _settle_all(self) -> None:
        """Connection thread: ack or requeue each verdict, unless its tag is from a lost connection."""
        with self._verdict_lock:
            verdicts, self._verdicts = self._verdicts, []
            self._settle_scheduled = False
        if self._dedupe is not None:
            self._dedupe.flush()  # every id these acks rely on is durable first
        channel = self._channel
        for future, delivery, settlement in verdicts:
            with self._pending_lock:
                self._pending.pop(future, None)
            if delivery.generation != self._generation or channel is None or not channel.is_open:
                continue
            if settlement is _Settlement.ACK:
                channel.basic_ack(delivery.tag)
            else:
                channel.basic_nack(delivery.tag, requeue=True)

    # ------------------------------------------------------------------ worker threads

    def _process(self, delivery: _Delivery) -> _Settlement:
        try:
            event = self._decode(delivery)
        except InvalidMessage as exc:
            return self._dead_letter(delivery, reason=exc.reason, error_class=exc.kind,
                                     error_type=type(exc).__name__, attempts=0)
        attempt = int(delivery.headers.get(Header.ATTEMPT, 0) or 0)
        with (
            self._in_flight.claim(event.event_id),
            structlog.contextvars.bound_contextvars(
                event_id=str(event.event_id), event_type=event.type, wave_id=event.wave_id,
                mailbox_id=str(event.mailbox_id) if event.mailbox_id else None, attempt=attempt,
            ),
        ):
            if self._dedupe is not None and self._dedupe.seen(event.event_id):
                log.debug("event.duplicate")
                metrics.DUPLICATES.labels(self.name, event.type).inc()
                return _Settlement.ACK
            return self._handle(delivery, event, attempt)

    def _decode(self, delivery: _Delivery) -> Event:
        size = len(delivery.body)
        if size > self._options.max_body_bytes:
            raise InvalidMessage(
                f"message of {size} bytes exceeds the {self._options.max_body_bytes}-byte limit",
                kind="too-large")
        content_type = delivery.properties.content_type
        if content_type not in (None, "application/json"):
            raise InvalidMessage(f"content type {content_type!r} is not application/json",
                                 kind="undecodable")
        try:
            document = json.loads(delivery.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidMessage(f"not JSON: {str(exc)[:200]}", kind="undecodable") from exc
        try:
            event = parse_event(document)
        except UnknownEventType as exc:
            raise InvalidMessage(str(exc), kind="unknown-type") from exc
        except pydantic.ValidationError as exc:
            raise InvalidMessage(f"invalid event: {_summarise(exc)}", kind="invalid") from exc
        except ValueError as exc:
            raise InvalidMessage(f"invalid event: {str(exc)[:300]}", kind="invalid") from exc
        if event.type not in self._routes:
            raise InvalidMessage(f"{self.name} has no handler for {event.type}", kind="unknown-type")
        return event

    def _handle(self, delivery: _Delivery, event: Event, attempt: int) -> _Settlement:
        route = self._routes[event.type]
        context = Context(
            event, producer=self.name, attempt=attempt,
            replayed=int(delivery.headers.get(Header.REPLAYED, 0) or 0),
            publisher=self._publisher, timer_queue=self.names.timer,
            own_queue=self.names.work,
        )
        started = time.perf_counter()
        try:
            produced = route.handler(event, context)
            if produced:
                context.publish(*produced)
        except InvalidMessage as exc:
            return self._dead_letter(delivery, reason=exc.reason, error_class=exc.kind,
                                     error_type=type(exc).__name__, attempts=attempt, step=route.step)
        except PublishError as exc:
            # The effects may be done but the next event is not confirmed: run again later.
            log.warning("event.publish_failed", error=str(exc))
            return self._retry_or_dead_letter(delivery, event, route, exc, attempt)
        except Exception as exc:  # noqa: BLE001 - every failure is classified, none escapes
            return self._retry_or_dead_letter(delivery, event, route, exc, attempt)
        finally:
            metrics.HANDLER_SECONDS.labels(self.name, event.type).observe(time.perf_counter() - started)
        if self._dedupe is not None:
            self._dedupe.remember(event.event_id)
        metrics.HANDLED.labels(self.name, event.type).inc()
        log.debug("event.handled", seconds=round(time.perf_counter() - started, 4))
        return _Settlement.ACK

    def _retry_or_dead_letter(
        self, delivery: _Delivery, event: Event, route: Route, exc: Exception, attempt: int
    ) -> _Settlement:
        failures = attempt + 1
        if isinstance(exc, HandlerError):
            error_class, reason, remediation = exc.error_class, exc.reason, exc.remediation
            error_type = exc.error_type
        else:
            error_class, reason, remediation = ErrorClass.TRANSIENT, f"{exc}"[:2000], ""
            error_type = type(exc).__name__
            log.warning("event.unexpected_error", error_type=error_type,
                        trace="".join(traceback.format_exception(exc))[-3000:])
        delays = self._options.retry_delays
        if error_class is ErrorClass.TRANSIENT and failures <= len(delays):
            delay = delays[failures - 1]
            headers = {**delivery.headers, Header.ATTEMPT.value: failures,
                       Header.REASON.value: reason[:1000], Header.ERROR_TYPE.value: error_type}
            try:
                self._publish_copy(self.names.retry(delay), delivery, headers)
            except PublishError:
                return _Settlement.REQUEUE
            metrics.RETRIED.labels(self.name, event.type).inc()
            log.info("event.retry_scheduled", delay_seconds=delay, reason=reason[:300])
            return _Settlement.ACK
        if error_class is ErrorClass.TRANSIENT:
            reason = f"gave up after {failures} attempts: {reason}"
        settlement = self._dead_letter(delivery, reason=reason, error_class=error_class.value,
                                       error_type=error_type, attempts=failures, step=route.step)
        if settlement is _Settlement.ACK and event.type not in ("mailbox.failed", "wave.failed"):
            try:
                self._publisher.publish_events(
                    [self._failure_event(event, route.step, error_class, reason, error_type,
                                         remediation, failures)])
            except PublishError:
                # The dead letter exists; the announcement is redone when the
                # message comes back (a replay or a redelivery).
                log.error("event.failure_not_announced")
        return settlement

    def _failure_event(
        self, event: Event, step: Step, error_class: ErrorClass, reason: str,
        error_type: str, remediation: str, attempts: int,
    ) -> Event:
        if event.mailbox_id is not None:
            address = _primary_address(event)
            return follow(event, MailboxFailed, producer=self.name, key=f"failed-{attempts}",
                          data=MailboxFailedData(
                              step=step, error_class=error_class, reason=reason[:4000],
                              error_type=error_type[:256], remediation=remediation[:4000],
                              attempts=attempts, primary_smtp_address=address))
        return follow(event, WaveFailed, producer=self.name, key=f"failed-{attempts}",
                      data=WaveFailedData(step=step, error_class=error_class,
                                          reason=reason[:4000], remediation=remediation[:4000]))

    def _dead_letter(
        self, delivery: _Delivery, *, reason: str, error_class: str, error_type: str, attempts: int,
        step: Step | None = None,
    ) -> _Settlement:
        headers = dead_letter_headers(
            self.name, delivery.headers, reason=reason, error_class=error_class, error_type=error_type,
            attempts=attempts, routing_key=delivery.routing_key, step=step)
        try:
            self._publish_copy(self.names.dead_letter, delivery, headers)
        except PublishError:
            log.error("event.dead_letter_failed", reason=reason[:300])
            return _Settlement.REQUEUE
        metrics.DEAD_LETTERED.labels(self.name, error_class).inc()
        log.warning("event.dead_lettered", reason=reason[:500], error_class=error_class,
                    attempts=attempts)
        return _Settlement.ACK

    def _publish_copy(self, queue: str, delivery: _Delivery, headers: dict[str, Any]) -> None:
        original = delivery.properties
        props = pika.BasicProperties(
            content_type=original.content_type, content_encoding=original.content_encoding,
            delivery_mode=pika.DeliveryMode.Persistent.value, message_id=original.message_id,
            correlation_id=original.correlation_id, type=original.type, app_id=original.app_id,
            timestamp=original.timestamp, headers=headers,
        )
        self._publisher.wait([self._publisher.publish_raw("", queue, delivery.body, props)])


def dead_letter_headers(
    consumer: str, base: Mapping[str, Any], *, reason: str, error_class: str, error_type: str,
    attempts: int, routing_key: str, step: Step | None,
) -> dict[str, Any]:
    """The headers a dead letter carries: why, what kind of failure, who gave up, when."""
    headers = {
        **base,
        Header.REASON.value: reason[:1000],
        Header.ERROR_CLASS.value: error_class,
        Header.ERROR_TYPE.value: error_type[:200],
        Header.ATTEMPT.value: attempts,
        Header.DEAD_LETTERED_BY.value: consumer,
        Header.DEAD_LETTERED_AT.value: datetime.now(UTC).isoformat(timespec="seconds"),
        Header.ORIGINAL_ROUTING_KEY.value: routing_key,
    }
    if step is not None:
        headers[Header.STEP.value] = step.value
    return headers


def _summarise(error: pydantic.ValidationError) -> str:
    """The first few validation errors, by field path, without echoing the input."""
    parts = []
    for item in error.errors(include_input=False)[:3]:
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _primary_address(event: Event) -> str | None:
    data = event.data
    for candidate in (data, getattr(data, "mailbox", None)):
        address = getattr(candidate, "primary_smtp_address", None)
        if isinstance(address, str):
            return address
    return None
