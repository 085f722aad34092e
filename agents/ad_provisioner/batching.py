"""Coalescing the look-ups of concurrent handlers into one directory search.

The runtime runs up to `runtime.workers` handlers at once, each about one
mailbox. Searching the directory once per mailbox would cost one
directory-wide search per person; instead each handler hands its question to
a `LookupBatcher` and waits. The first question opens a batch and its thread
becomes the batch's leader: it waits a few milliseconds (or until the batch
is full), then runs ONE search for every question collected and wakes the
others. Questions arriving while that search runs open the next batch, so
searches pipeline instead of queueing behind a lock. No background thread,
nothing to shut down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from events.errors import HandlerError, TransientError

__all__ = ["BatchStats", "KeyedLock", "LookupBatcher"]

Q = TypeVar("Q")
A = TypeVar("A")


@dataclass
class _Batch(Generic[Q, A]):
    questions: list[Q] = field(default_factory=list)
    closed: bool = False
    answer: A | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class BatchStats:
    """How well batching works: questions asked versus searches run."""

    questions: int = 0
    batches: int = 0
    largest_batch: int = 0


class LookupBatcher(Generic[Q, A]):
    """`ask(question)` from many threads; `search(questions)` runs once per batch.

    Every question of a batch receives the batch's whole answer: the caller
    picks what concerns it (the answer is small, a few entries per question).
    """

    def __init__(
        self, search: Callable[[Sequence[Q]], A], *, max_batch: int, wait_seconds: float
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._search = search
        self._max_batch = max_batch
        self._wait_seconds = wait_seconds
        self._condition = threading.Condition()
        self._open: _Batch[Q, A] | None = None
        self.stats = BatchStats()

    def ask(self, question: Q) -> A:
        batch, leader = self._join(question)
        if leader:
            self._lead(batch)
        else:
            batch.done.wait()
        if batch.error is not None:
            raise _for_this_caller(batch.error)
        return batch.answer  # type: ignore[return-value]  # set whenever error is None

    def _join(self, question: Q) -> tuple[_Batch[Q, A], bool]:
        with self._condition:
            self.stats.questions += 1
            batch = self._open
            leader = batch is None
            if batch is None:
                batch = self._open = _Batch()
            batch.questions.append(question)
            if len(batch.questions) >= self._max_batch:
                self._close(batch)
            return batch, leader

    def _close(self, batch: _Batch[Q, A]) -> None:
        """Called with the condition held: no more questions join *batch*."""
        batch.closed = True
        if self._open is batch:
            self._open = None
        self._condition.notify_all()

    def _lead(self, batch: _Batch[Q, A]) -> None:
        deadline = time.monotonic() + self._wait_seconds
        with self._condition:
            while not batch.closed and (remaining := deadline - time.monotonic()) > 0:
                self._condition.wait(remaining)
            self._close(batch)
            self.stats.batches += 1
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch.questions))
        try:
            batch.answer = self._search(batch.questions)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller, not swallowed
            batch.error = exc
        finally:
            batch.done.set()


def _for_this_caller(error: BaseException) -> BaseException:
    """A fresh exception per caller: one object raised in many threads would share a traceback."""
    if isinstance(error, HandlerError):
        copy = type(error)(error.reason, remediation=error.remediation, error_type=error.error_type)
    elif isinstance(error, Exception):
        copy = TransientError(f"directory look-up failed: {type(error).__name__}: {error}"[:2000])
    else:
        return error
    copy.__cause__ = error
    return copy


class KeyedLock:
    """One lock per key (a mailbox), created on demand and dropped when nobody holds it.

    Two events about one mailbox (a redelivery racing its original) must not
    both decide "no account yet" and create two.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
