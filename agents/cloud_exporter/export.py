"""The wave's mailboxes, page by page: scope, validate, size, hand over, forget.

Only one page of records (at most `page_size`, 1,000 by default) is alive at
a time: each page is published before the next is read, so a 20,000-mailbox
tenant costs the memory of one page. An explicit list narrows the domains'
scope; its addresses are matched against every SMTP proxy and the UPN, so a
secondary address finds its mailbox too.
"""

from __future__ import annotations

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
from contracts.events import CloudMailbox, WaveExportedData

__all__ = ["MailboxExport"]

log = structlog.get_logger(__name__)

# wave.exported must stay well below the broker's message size limit (1 MiB): the
# full lists are in the agent's log, the event carries the first ones and a count
MAX_SKIPPED_LISTED: Final = 1000
MAX_NOT_FOUND_LISTED: Final = 5000

Publish = Callable[[list[CloudMailbox]], None]


class _Report:
    """What the export leaves out, and why, bounded in size."""

    def __init__(self) -> None:
        self.skipped: list[str] = []
        self.unlisted = 0

    def skip(self, reason: str) -> None:
        log.warning("export.mailbox_skipped", reason=reason)
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append(reason)
        else:
            self.unlisted += 1


class MailboxExport:
    def __init__(self, source: MailboxSource, *, routing_domain: str) -> None:
        self._source = source
        self._routing_domain = routing_domain

    def run(self, domains: Sequence[str], explicit: Sequence[str] | None,
            publish: Publish) -> WaveExportedData:
        """Publish every in-scope mailbox (a page per call of *publish*); the count and the misses."""
        wanted = None if explicit is None else {a.lower(): a for a in explicit}
        matched: set[str] = set()
        report, count, pages = _Report(), 0, 0
        if wanted is None or wanted:
            for page in self._source.mailbox_pages(domains):
                pages += 1
                in_scope = self._scope(page, wanted, matched, report)
                mailboxes = self._validated(in_scope, report)
                if mailboxes:
                    publish(mailboxes)
                    count += len(mailboxes)
        missing = [original for key, original in (wanted or {}).items() if key not in matched]
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
    def _scope(page: Sequence[MailboxRecord], wanted: dict[str, str] | None, matched: set[str],
               report: _Report) -> list[MailboxRecord]:
        in_scope = []
        for record in page:
            if wanted is not None:
                hits = smtp_addresses(record) & wanted.keys()
                if not hits:
                    continue
                matched.update(hits)
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
