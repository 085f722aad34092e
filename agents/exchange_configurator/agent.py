"""The exchange-configurator's handlers: event in, port calls, events out.

`wave.requested`  -> inspect the org, prepare only what is missing, inspect again
                     and verify -> `wave.onprem_ready` (changes empty on a rerun)
`mailbox.provisioned` -> mail-enable through the batcher, verify the read-back
                     -> `mailbox.mail_enabled` (changes empty when it already was)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agents.exchange_configurator import org_plan
from agents.exchange_configurator.enabling import MailEnableOutcome, MailEnabler
from agents.exchange_configurator.ports import OnpremExchange
from agents.exchange_configurator.recipients import describe_changes, differences, mail_enable_item
from agents.shared.exchange_errors import classify
from contracts.envelope import Event
from contracts.events import (
    ErrorClass,
    MailboxMailEnabled,
    MailboxMailEnabledData,
    MailboxProvisioned,
    MailboxProvisionedData,
    MailEnableMode,
    Step,
    WaveOnpremReady,
    WaveOnpremReadyData,
    WaveRequested,
)
from contracts.onprem import OnpremRecipient, ShellError
from events.consumer import Context, Route
from events.errors import HandlerError, NeedsHumanError, PermanentError, TransientError

__all__ = ["ConfiguratorSettings", "ExchangeConfigurator", "error_for"]

_RAISE: Mapping[ErrorClass, type[HandlerError]] = {
    ErrorClass.TRANSIENT: TransientError,
    ErrorClass.PERMANENT: PermanentError,
    ErrorClass.NEEDS_HUMAN: NeedsHumanError,
}
_WRONG_KIND = re.compile(r"is an? (\w+), not an? (\w+)")


@dataclass(frozen=True)
class ConfiguratorSettings:
    routing_domain: str
    send_connector_name: str
    target_databases: tuple[str, ...] = ()
    target_archive_databases: tuple[str, ...] = ()
    target_delivery_domain: str | None = None
    mail_enable_mode: MailEnableMode = MailEnableMode.MAIL_USER
    mrsproxy_max_connections: int = 100


def error_for(what: str, errors: Sequence[ShellError]) -> HandlerError:
    """Exchange's errors as the runtime's failure: the gravest class among them decides."""
    verdicts = [classify(e.message, e.type) for e in errors]
    rank = [ErrorClass.TRANSIENT, ErrorClass.PERMANENT, ErrorClass.NEEDS_HUMAN]
    worst = max(range(len(errors)), key=lambda i: rank.index(verdicts[i].error_class))
    remediation = verdicts[worst].remediation
    kind = _WRONG_KIND.search(errors[worst].message)
    if kind and not verdicts[worst].rule:
        remediation = (f"the on-prem object is already a {kind.group(1)}; moving onto it needs a plain user "
                       f"or a {kind.group(2)}: decide which object is kept, fix it, then replay")
    reason = f"{what}: " + "; ".join(f"{e.type}: {e.message}" for e in errors)
    return _RAISE[verdicts[worst].error_class](reason[:4000], remediation=remediation,
                                               error_type=errors[worst].type)


class ExchangeConfigurator:
    def __init__(self, exchange: OnpremExchange, enabler: MailEnabler,
                 settings: ConfiguratorSettings) -> None:
        self._exchange = exchange
        self._enabler = enabler
        self._settings = settings

    def routes(self) -> dict[str, Route]:
        return {
            "wave.requested": Route(self.prepare_org, Step.ONPREM_PREPARATION),
            "mailbox.provisioned": Route(self.mail_enable, Step.MAIL_ENABLE),
        }

    # ------------------------------------------------------------------ wave.requested

    def prepare_org(self, event: WaveRequested, context: Context) -> list[Event]:
        target = self._target(event)
        org = self._exchange.inspect_org()
        unknown = org_plan.unknown_databases(org, target)
        if unknown:
            known = ", ".join(d.name for d in org.mailbox_databases) or "none"
            raise PermanentError(
                f"unknown target databases: {', '.join(unknown)} (the organisation has: {known})",
                remediation="choose target databases the organisation has "
                            "(--target-database or [onprem_exchange] target_databases)")
        request, changes = org_plan.plan(org, target), []
        if not org_plan.is_empty(request):
            response = self._exchange.prepare_org(request)
            if response.errors:
                raise error_for("preparing the on-prem organisation failed", response.errors)
            changes = list(response.changes)
            org = self._exchange.inspect_org()
            left = org_plan.describe(org_plan.plan(org, target))
            if left:
                raise PermanentError(f"still missing after preparation: {'; '.join(left)}"[:4000],
                                     remediation="make these changes by hand (or find what undoes them), "
                                                 "then replay the wave")
        servers, databases, connections = org_plan.ready_facts(
            org, target, self._settings.mrsproxy_max_connections)
        return [context.follow(WaveOnpremReady, WaveOnpremReadyData(
            mrsproxy_servers=servers, mounted_databases=databases, max_mrs_connections=connections,
            changes=changes, warnings=org_plan.warnings(org, target)))]

    def _target(self, event: WaveRequested) -> org_plan.OrgTarget:
        wave, settings = event.data, self._settings
        primary = tuple(wave.target_databases) or settings.target_databases
        archive = tuple(wave.target_archive_databases) or settings.target_archive_databases
        return org_plan.OrgTarget(
            domains=tuple(wave.domains), routing_domain=settings.routing_domain,
            send_connector_name=settings.send_connector_name,
            databases=tuple(dict.fromkeys(primary + archive)),
            target_delivery_domain=settings.target_delivery_domain)

    # ------------------------------------------------------------------ mailbox.provisioned

    def mail_enable(self, event: MailboxProvisioned, context: Context) -> list[Event]:
        data = event.data
        # the wave's choice when it made one, otherwise the site's configuration
        mode = data.mail_enable_mode if "mail_enable_mode" in data.model_fields_set \
            else self._settings.mail_enable_mode
        item = mail_enable_item(data)
        outcome = self._enabler.enable(mode, item)
        recipient = _recipient_or_raise(outcome, data)
        problems = differences(item, recipient, mode)
        if problems:
            raise PermanentError(
                f"read-back of {data.mailbox.primary_smtp_address} differs from the cloud mailbox: "
                + "; ".join(problems),
                remediation="find what changed the on-prem object (an email address policy, another "
                            "tool), correct it, then replay", error_type="ReadBackMismatch")
        changes = describe_changes(outcome.before, recipient) if outcome.result and outcome.before else []
        return [context.follow(MailboxMailEnabled, MailboxMailEnabledData(
            mailbox=data.mailbox, account=data.account, mail_enable_mode=mode, changes=changes))]


def _recipient_or_raise(outcome: MailEnableOutcome, data: MailboxProvisionedData) -> OnpremRecipient:
    address = data.mailbox.primary_smtp_address
    if outcome.before is None:
        raise TransientError(
            f"Exchange sees no account with objectGUID {data.account.object_guid} "
            f"({data.account.distinguished_name}) for {address}",
            remediation="if the account was just created, this resolves as the domain controllers "
                        "replicate; otherwise check that the account exists", error_type="AccountNotFound")
    result = outcome.result
    if result is not None and not result.ok:
        raise error_for(f"mail-enable of {address} failed",
                        [result.error or ShellError(type="UnknownError", message="no error text")])
    recipient = outcome.recipient
    if recipient is None:
        raise TransientError(f"mail-enable of {address} reported success without the recipient")
    return recipient
