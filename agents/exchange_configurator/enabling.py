"""Mail-enabling in batches: look first, change only what differs, hand back per mailbox.

One batch costs at most two commands, whatever its size: recipient-read for
every account in it, then mail-enable for those that are not ready yet. A
redelivered or replayed mailbox that is already right costs only its share
of the read, and nothing in the directory changes. Batches are kept apart by
mode (mail user or remote mailbox), as one request has one mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from agents.exchange_configurator.batching import Batcher, BatchStats
from agents.exchange_configurator.ports import OnpremExchange
from agents.exchange_configurator.recipients import differences
from contracts.events import MailEnableMode
from contracts.onprem import MailEnableItem, MailEnableResult, OnpremRecipient

__all__ = ["MailEnableOutcome", "MailEnabler"]


@dataclass(frozen=True)
class MailEnableOutcome:
    """One mailbox's part of a batch."""

    before: OnpremRecipient | None  # None: no account with that objectGUID
    result: MailEnableResult | None  # None: nothing needed changing (or no account)

    @property
    def recipient(self) -> OnpremRecipient | None:
        """The recipient as it is now: read back after the change, or as it was found."""
        return self.result.recipient if self.result is not None else self.before


class MailEnabler:
    def __init__(self, exchange: OnpremExchange, *, batch_size: int, wait_seconds: float) -> None:
        self._exchange = exchange
        self._batchers = {
            mode: Batcher[MailEnableItem, MailEnableOutcome](
                partial(self._run_batch, mode), max_size=batch_size, max_wait=wait_seconds)
            for mode in MailEnableMode
        }

    def enable(self, mode: MailEnableMode, item: MailEnableItem) -> MailEnableOutcome:
        """Blocks until this mailbox's batch has run; a failed command raises for every mailbox in it."""
        return self._batchers[mode].submit(item)

    def stats(self) -> dict[str, BatchStats]:
        return {mode.value: batcher.stats for mode, batcher in self._batchers.items()}

    def _run_batch(self, mode: MailEnableMode, items: Sequence[MailEnableItem]) -> list[MailEnableOutcome]:
        found = self._exchange.read_recipients([item.identity for item in items])
        before = [read.recipient if read.found else None for read in found]
        todo = [index for index, item in enumerate(items)
                if (current := before[index]) is not None and differences(item, current, mode)]
        results: dict[int, MailEnableResult] = {}
        if todo:
            enabled = self._exchange.mail_enable(mode, [items[index] for index in todo])
            results = dict(zip(todo, enabled, strict=True))
        return [MailEnableOutcome(before[index], results.get(index)) for index in range(len(items))]
