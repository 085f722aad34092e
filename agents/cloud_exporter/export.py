"""The wave's mailboxes, page by page: scope, validate, size, hand over, forget.

One page (at most `page_size`, 1,000 by default) per message: the handler
publishes the page's mailboxes and hands itself the cursor of the next page,
so a 20,000-mailbox tenant costs the memory of one page, no handler runs long
enough to meet the broker's consumer timeout, and an interrupted export
resumes at the page it was on. An explicit list narrows the domains'
scope; its addresses are matched against every SMTP proxy and the UPN, so a
secondary address finds its mailbox too.
"""

from __future__ import annotations

import base64
import bisect
from collections.abc import Callable, Sequence
from typing import Final

import pydantic
import structlog

from agents.cloud_exporter.mapping import (
    not_movable_reason,
    skip_reason,
    smtp_addresses,
    to_cloud_mailbox,
)
from agents.cloud_exporter.ports import MailboxRecord, MailboxSource
from contracts.events import CloudMailbox, WaveExportedData, WaveExportPageDueData, WaveRequestedData

__all__ = ["MailboxExport"]

log = structlog.get_logger(__name__)

# wave.exported must stay well below the broker's message size limit (1 MiB): the
# full lists are in the agent's log, the event carries the first ones and a count
MAX_SKIPPED_LISTED: Final = 1000
MAX_NOT_FOUND_LISTED: Final = 5000

Publish = Callable[[list[CloudMailbox]], None]


class _Report:
    """What the export leaves out, and why, bounded in size (carried from page to page)."""

    def __init__(self, skipped: list[str], unlisted: int) -> None:
        self.skipped = list(skipped)
        self.unlisted = unlisted

    def skip(self, reason: str) -> None:
        log.warning("export.mailbox_skipped", reason=reason)
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append(reason[:256])
        else:
            self.unlisted += 1


class _Matched:
    """Which addresses of an explicit list were found: a bit each, in sorted lower-case order."""

    def __init__(self, explicit: Sequence[str] | None, encoded: str) -> None:
        self.wanted = {a.lower(): a for a in explicit} if explicit is not None else None
        self.order = sorted(self.wanted) if self.wanted is not None else []
        size = (len(self.order) + 7) // 8
        self.bits = bytearray(base64.b64decode(encoded)) if encoded else bytearray(size)
        self.bits.extend(bytes(max(0, size - len(self.bits))))

    def mark(self, addresses: set[str]) -> None:
        for address in addresses:
            index = bisect.bisect_left(self.order, address)
            self.bits[index // 8] |= 1 << (index % 8)

    def missing(self) -> list[str]:
        assert self.wanted is not None
        return [self.wanted[a] for i, a in enumerate(self.order) if not self.bits[i // 8] & (1 << (i % 8))]

    def encoded(self) -> str:
        return base64.b64encode(bytes(self.bits)).decode("ascii") if self.order else ""


class MailboxExport:
    def __init__(self, source: MailboxSource, *, routing_domain: str) -> None:
        self._source = source
        self._routing_domain = routing_domain

    @staticmethod
    def start(request: WaveRequestedData) -> WaveExportPageDueData:
        return WaveExportPageDueData(request=request, page=1)

    def run_page(
        self, state: WaveExportPageDueData, publish: Publish
    ) -> WaveExportPageDueData | WaveExportedData:
        """Publish the in-scope mailboxes of one page; where to go on from, or the final count."""
        request = state.request
        matched = _Matched(request.mailboxes, state.matched)
        report = _Report(state.skipped, state.skipped_unlisted)
        count, cursor = state.count, None
        if matched.wanted is None or matched.wanted:
            page, cursor = self._source.mailbox_page(request.domains, state.cursor, state.page)
            in_scope = self._scope(page, matched, report)
            mailboxes = self._validated(in_scope, report)
            if mailboxes:
                publish(mailboxes)
                count += len(mailboxes)
        if cursor is not None:
            return state.model_copy(update={
                "page": state.page + 1, "cursor": cursor, "count": count, "skipped": report.skipped,
                "skipped_unlisted": report.unlisted, "matched": matched.encoded()})
        return self._finish(count, state.page, matched, report)

    @staticmethod
    def _finish(count: int, pages: int, matched: _Matched, report: _Report) -> WaveExportedData:
        missing = matched.missing() if matched.wanted is not None else []
        for address in missing:
            log.warning("export.mailbox_not_found", address=address)
        if len(missing) > MAX_NOT_FOUND_LISTED:
            report.skipped.append(f"{len(missing) - MAX_NOT_FOUND_LISTED} more requested addresses "
                                  "were not found (see the cloud-exporter's log)")
        if report.unlisted:
            report.skipped.append(f"{report.unlisted} more mailboxes were skipped "
                                  "(see the cloud-exporter's log)")
        log.info("export.done", mailboxes=count, pages=pages, not_found=len(missing),
                 skipped=len(report.skipped) + report.unlisted)
        return WaveExportedData(count=count, not_found=missing[:MAX_NOT_FOUND_LISTED],
                                skipped=report.skipped)

    @staticmethod
    def _scope(page: Sequence[MailboxRecord], matched: _Matched, report: _Report) -> list[MailboxRecord]:
        in_scope = []
        for record in page:
            if matched.wanted is not None:
                hits = smtp_addresses(record) & matched.wanted.keys()
                if not hits:
                    continue
                matched.mark(hits)
            reason = not_movable_reason(record)
            if reason is not None:
                report.skip(reason)
                continue
            in_scope.append(record)
        return in_scope

    def _validated(self, records: list[MailboxRecord], report: _Report) -> list[CloudMailbox]:
        """Records that make a valid CloudMailbox, sized (statistics only for those)."""
        valid: list[tuple[MailboxRecord, CloudMailbox]] = []
        for record in records:
            try:
                valid.append((record, to_cloud_mailbox(record, None, self._routing_domain)))
            except pydantic.ValidationError as exc:
                report.skip(skip_reason(record, exc))
        sizes = self._source.sizes([record for record, _ in valid])
        return [mailbox if size is None else mailbox.model_copy(update={
                    "size_bytes": size.size_bytes if (size.size_bytes or 0) >= 0 else None,
                    "item_count": size.item_count if (size.item_count or 0) >= 0 else None})
                for (_, mailbox), size in zip(valid, sizes, strict=True)]
