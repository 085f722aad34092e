"""The cloud-exporter's handler: wave.requested in; wave.cloud_ready, mailbox.discovered, wave.exported out.

The cloud side is prepared first and announced at once (the migration monitor
may start admitting moves while the export runs); the export then publishes
a page of `mailbox.discovered` at a time. Every id is derived from the
request (mailbox ids from the ExchangeGuid), so a redelivered or replayed
request publishes the very same events and the next agents drop the repeats.
"""

from __future__ import annotations

from agents.cloud_exporter.export import MailboxExport
from agents.cloud_exporter.preparation import CloudPreparation
from contracts.envelope import Event
from contracts.events import (
    CloudMailbox,
    MailboxDiscovered,
    WaveCloudReady,
    WaveExported,
    WaveExportPageDue,
    WaveExportPageDueData,
    WaveRequested,
)
from events.consumer import Context

__all__ = ["CloudExporter"]


class CloudExporter:
    def __init__(self, preparation: CloudPreparation, export: MailboxExport) -> None:
        self._preparation = preparation
        self._export = export

    def on_wave_requested(self, event: WaveRequested, context: Context) -> list[Event]:
        """Prepare the cloud side, announce it, and start the export at its first page."""
        ready = self._preparation.prepare(event.data.domains)
        context.publish(context.follow(WaveCloudReady, ready))
        context.continue_with(context.follow(WaveExportPageDue, self._export.start(event.data)))
        return []

    def on_export_page_due(self, event: WaveExportPageDue, context: Context) -> list[Event]:
        """One page of mailboxes; then the next page, or the count once the last is done."""

        def publish_page(mailboxes: list[CloudMailbox]) -> None:
            context.publish(*(
                context.follow(MailboxDiscovered, mailbox, mailbox_id=mailbox.exchange_guid,
                               key=str(mailbox.exchange_guid))
                for mailbox in mailboxes))

        outcome = self._export.run_page(event.data, publish_page)
        if isinstance(outcome, WaveExportPageDueData):
            context.continue_with(context.follow(WaveExportPageDue, outcome))
            return []
        return [context.follow(WaveExported, outcome)]
