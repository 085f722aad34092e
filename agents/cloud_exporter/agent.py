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
    WaveRequested,
)
from events.consumer import Context

__all__ = ["CloudExporter"]


class CloudExporter:
    def __init__(self, preparation: CloudPreparation, export: MailboxExport) -> None:
        self._preparation = preparation
        self._export = export

    def on_wave_requested(self, event: WaveRequested, context: Context) -> list[Event]:
        wave = event.data
        ready = self._preparation.prepare(wave.domains)
        context.publish(context.follow(WaveCloudReady, ready))

        def publish_page(mailboxes: list[CloudMailbox]) -> None:
            context.publish(*(
                context.follow(MailboxDiscovered, mailbox, mailbox_id=mailbox.exchange_guid,
                               key=str(mailbox.exchange_guid))
                for mailbox in mailboxes))

        exported = self._export.run(wave.domains, wave.mailboxes, publish_page)
        return [context.follow(WaveExported, exported)]
