"""Checks and records shared by migration batches and move requests."""

from __future__ import annotations

from typing import Final

from lab.exo import errors
from lab.exo.model import Mailbox, Move, Phase
from lab.exo.tenant import Tenant

ALREADY_MOVING: Final = "Microsoft.Exchange.Management.Migration.MigrationPermanentException"


def ensure_movable(tenant: Tenant, mailbox: Mailbox, shown_as: str) -> None:
    """A mailbox can be in one batch or have one move request, never two."""
    move = tenant.move_for(mailbox)
    if move is None:
        return
    if move.in_batch:
        raise errors.CmdletError(
            errors.ALREADY_EXISTS,
            f"The user '{shown_as}' is already included in migration batch "
            f"'{move.migration_batch}'. Remove the user from that batch, or remove the batch, "
            "and try again.")
    raise errors.CmdletError(
        errors.ALREADY_EXISTS,
        f"The user '{shown_as}' is already being moved. Remove the existing move request "
        "(Remove-MoveRequest) and try again.")


def check_delivery_domain(tenant: Tenant, domain: str) -> None:
    if not tenant.is_accepted_domain(domain):
        raise errors.bad_request(
            f"The domain '{domain}' is not an accepted domain for your organization. Add it as "
            "an accepted domain, or specify a TargetDeliveryDomain that is one.",
            "Microsoft.Exchange.Management.RecipientTasks.DomainNotAcceptedException")


def check_archive_choice(mailbox: Mailbox, primary_only: bool, archive_domain: str | None,
                         shown_as: str) -> None:
    if mailbox.has_archive and primary_only and not archive_domain:
        raise errors.bad_request(
            f"The mailbox '{shown_as}' has an archive in the cloud. You must specify the "
            "ArchiveDomain parameter when you use PrimaryOnly, so the archive stays reachable.",
            "Microsoft.Exchange.MailboxReplicationService.ArchiveDomainRequiredPermanentException")


def restart(move: Move) -> None:
    """Send a failed move back to the queue (Start-MigrationBatch / Resume-MoveRequest)."""
    move.phase = Phase.QUEUED
    move.status_detail = "Queued"
    move.message = move.failure_type = None
    move.failed_at = None
    move.next_attempt_at = 0.0
    move.complete_due = None
