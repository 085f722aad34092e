"""Many mailboxes per WinRM command: a batcher that concurrent handlers feed.

The runtime runs one handler thread per message, each about one mailbox.
A command per mailbox would cost a WinRM round trip and a script start each;
instead every handler calls `submit(item)` and blocks. The first item of a
batch makes its thread the batch's *leader*: it waits until the batch is
full or `max_wait` has passed since that first item, closes the batch
(later items start the next one, with its own leader) and runs it with one
call of `run(items)`. Results go back to each waiting thread by position.

So batches pipeline: while one runs, the next fills, and its leader runs it
as soon as it is due (the shell pool decides how many run at once). There
is no background thread to start or stop.

Failures: `run` answers per item, so one mailbox's error is just its result
and never touches the others; if `run` raises (the whole command failed),
every item of that batch gets the same exception.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["BatchStats", "Batcher"]

I = TypeVar("I")  # noqa: E741 - item
R = TypeVar("R")  # result


@dataclass
class BatchStats:
    """How well batching works (for logs, benchmarks and tests)."""

    items: int = 0
    batches: int = 0
    largest: int = 0
    seconds_in_run: float = 0.0


@dataclass
class _Batch(Generic[I, R]):
    items: list[I] = field(default_factory=list)
    futures: list[Future[R]] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)


class Batcher(Generic[I, R]):
    """`submit(item) -> result` from many threads; `run(items) -> results` once per batch."""

    def __init__(self, run: Callable[[Sequence[I]], Sequence[R]], *, max_size: int,
                 max_wait: float) -> None:
        if max_size < 1 or max_wait < 0:
            raise ValueError("max_size must be at least 1 and max_wait not negative")
        self._run = run
        self._max_size = max_size
        self._max_wait = max_wait
        self._lock = threading.Lock()
        self._open: _Batch[I, R] | None = None
        self.stats = BatchStats()

    def submit(self, item: I) -> R:
        """Queue *item*, wait for its batch to run, return its result (or raise the batch's error)."""
        future: Future[R] = Future()
        with self._lock:
            batch, leader = self._open, self._open is None
            if batch is None:
                batch = self._open = _Batch()
            batch.items.append(item)
            batch.futures.append(future)
            if len(batch.items) >= self._max_size:
                self._open = None
                batch.full.set()
        if leader:
            batch.full.wait(self._max_wait)
            with self._lock:
                if self._open is batch:
                    self._open = None
            self._execute(batch)
        return future.result()

    def _execute(self, batch: _Batch[I, R]) -> None:
        started = time.perf_counter()
        try:
            results = self._run(batch.items)
            if len(results) != len(batch.items):
                raise RuntimeError(f"a batch of {len(batch.items)} got {len(results)} results")
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting thread
            for future in batch.futures:
                future.set_exception(exc)
        else:
            for future, result in zip(batch.futures, results, strict=True):
                future.set_result(result)
        finally:
            with self._lock:
                self.stats.items += len(batch.items)
                self.stats.batches += 1
                self.stats.largest = max(self.stats.largest, len(batch.items))
                self.stats.seconds_in_run += time.perf_counter() - started
