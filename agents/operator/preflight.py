"""`homebound migrate --dry-run`: EXCHANGE.md's pre-flight checks and the plan, nothing changed.

Every system is read with the agents' own adapters and planned with the
agents' own pure planning functions, so the plan printed is what the agents
will do. Reads only: no Set-, New-, Enable- or LDAP write is ever issued here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic

from agents.runtime.config import HomeboundConfig
from contracts.events import CloudMailbox, MailboxProvisionedData, WaveRequestedData
from events.errors import HandlerError

__all__ = ["Check", "MailboxPlan", "PreflightReport", "run_checks"]

Status = Literal["pass", "warn", "fail", "plan"]


@dataclass(frozen=True)
class Check:
    number: int  # EXCHANGE.md's pre-flight check, 0 for the supporting ones
    name: str
    status: Status
    detail: str


@dataclass
class MailboxPlan:
    address: str
    account: str = ""  # what happens to the AD account
    onprem: str = ""  # what happens to the on-prem recipient
    problem: str = ""  # why it would fail, if it would


@dataclass
class PreflightReport:
    wave_id: str
    checks: list[Check] = field(default_factory=list)
    changes: dict[str, list[str]] = field(default_factory=dict)  # system -> planned changes
    mailboxes: list[MailboxPlan] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks) or any(m.problem for m in self.mailboxes)

    def add(self, number: int, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(number, name, status, detail))

    def as_json(self) -> dict[str, Any]:
        return {
            "wave": self.wave_id,
            "ok": not self.failed,
            "checks": [c.__dict__ for c in self.checks],
            "changes": self.changes,
            "mailboxes": [m.__dict__ for m in self.mailboxes],
            "not_found": self.not_found,
            "skipped": self.skipped,
        }


def _guarded(report: PreflightReport, what: str, step: Callable[[], None]) -> None:
    """A system that cannot be read fails its check with the reason, and the others still run."""
    try:
        step()
    except HandlerError as exc:
        report.add(0, what, "fail", f"{exc.reason}" + (f" ({exc.remediation})" if exc.remediation else ""))
    except Exception as exc:  # noqa: BLE001 - reported in the plan, never a traceback
        report.add(0, what, "fail", f"{type(exc).__name__}: {str(exc)[:300]}")


def run_checks(config: HomeboundConfig, wave_id: str, request: WaveRequestedData) -> PreflightReport:
    report = PreflightReport(wave_id)
    mailboxes: list[CloudMailbox] = []
    endpoint_limit: list[int] = []
    mrs_limit: list[int] = []
    _guarded(report, "Exchange Online", lambda: _cloud(config, request, report, mailboxes, endpoint_limit))
    accounts: dict[str, Any] = {}
    _guarded(report, "Active Directory", lambda: _directory(config, report, mailboxes, accounts))
    _guarded(
        report, "on-prem Exchange", lambda: _onprem(config, request, report, mailboxes, accounts, mrs_limit)
    )
    _guarded(report, "DNS", lambda: _dns(config, request, report))
    if endpoint_limit or mrs_limit:
        limit = min(endpoint_limit + mrs_limit)
        report.add(
            6,
            "concurrency",
            "pass",
            f"at most {limit} moves at once (endpoint {endpoint_limit or ['-']}, "
            f"MRSProxy {mrs_limit or ['-']}); {len(mailboxes)} mailboxes in "
            f"{-(-len(mailboxes) // max(limit, 1))} rounds or more",
        )
    return report


# --------------------------------------------------------------------------- Exchange Online


def _cloud(
    config: HomeboundConfig,
    request: WaveRequestedData,
    report: PreflightReport,
    mailboxes: list[CloudMailbox],
    endpoint_limit: list[int],
) -> None:
    from agents.cloud_exporter.adapters import ExoMailboxSource, ExoOrganisation
    from agents.cloud_exporter.mapping import (
        not_movable_reason,
        skip_reason,
        smtp_addresses,
        to_cloud_mailbox,
    )
    from agents.shared.exo_client import ExchangeOnlineClient

    exo = config.require("exchange_online", needed_by="the pre-flight")
    client = ExchangeOnlineClient(exo)
    try:
        organisation = ExoOrganisation(client)
        accepted = {d.domain_name.lower(): d for d in organisation.accepted_domains()}
        changes: list[str] = []
        for domain in request.domains:
            found = accepted.get(domain.lower())
            if found is None:
                report.add(2, f"accepted domain {domain}", "fail", "not an accepted domain in the tenant")
            elif found.domain_type != "InternalRelay":
                changes.append(f"accepted domain {domain}: {found.domain_type} -> InternalRelay")
        connector = organisation.outbound_connector(config.migration.outbound_connector_name)
        if connector is None:
            changes.append(f"outbound connector '{config.migration.outbound_connector_name}' created")
        elif not set(d.lower() for d in request.domains) <= {d.lower() for d in connector.recipient_domains}:
            changes.append(f"outbound connector '{connector.name}' extended to {', '.join(request.domains)}")
        endpoint = organisation.migration_endpoint(config.migration.endpoint_name)
        if endpoint is None:
            changes.append(
                f"migration endpoint '{config.migration.endpoint_name}' created "
                f"(MaxConcurrentMigrations {config.migration.max_concurrent_migrations})"
            )
            endpoint_limit.append(config.migration.max_concurrent_migrations)
            report.add(3, "migration endpoint", "plan", "created by the cloud-exporter, then tested")
        else:
            endpoint_limit.append(
                endpoint.max_concurrent_migrations or config.migration.max_concurrent_migrations
            )
            test = organisation.test_migration_endpoint(endpoint.name)
            report.add(
                3,
                "migration endpoint test",
                "pass" if test.ok else "warn",
                "Test-MigrationServerAvailability passed"
                if test.ok
                else f"fails now ({test.message[:200]}); passes once MRSProxy is enabled on-prem",
            )
        report.changes["Exchange Online"] = changes
        source = ExoMailboxSource(
            client, page_size=exo.page_size, include_statistics=False, statistics_concurrency=1
        )
        wanted = {a.lower() for a in request.mailboxes} if request.mailboxes else None
        seen: set[str] = set()
        for page in source.mailbox_pages(request.domains):
            for record in page:
                addresses = smtp_addresses(record)
                if wanted is not None and not (addresses & wanted):
                    continue
                seen |= addresses
                reason = not_movable_reason(record)
                if reason:
                    report.skipped.append(reason)
                    continue
                try:
                    mailboxes.append(to_cloud_mailbox(record, None, exo.routing_domain))
                except pydantic.ValidationError as exc:
                    report.skipped.append(skip_reason(record, exc))
        if wanted is not None:
            report.not_found = sorted(wanted - seen)
        moving = {
            str(r.get("Identity", "")).lower()
            for r in client.invoke("Get-MigrationUser", {"ResultSize": "Unlimited"})
        }
        moving |= {
            str(r.get("PrimarySmtpAddress") or r.get("Identity") or "").lower()
            for r in client.invoke("Get-MoveRequest", {"ResultSize": "Unlimited"})
        }
        busy = [m.primary_smtp_address for m in mailboxes if m.primary_smtp_address.lower() in moving]
        report.add(
            5,
            "no existing move",
            "fail" if busy else "pass",
            f"already being moved: {', '.join(busy[:10])}"
            if busy
            else f"none of the {len(mailboxes)} mailboxes has a migration user or move request",
        )
        report.add(
            0,
            "mailboxes in scope",
            "pass" if mailboxes else "warn",
            f"{len(mailboxes)} to move, {len(report.skipped)} skipped, "
            f"{len(report.not_found)} listed but not found",
        )
    finally:
        client.close()


# --------------------------------------------------------------------------- Active Directory


def _directory(
    config: HomeboundConfig, report: PreflightReport, mailboxes: list[CloudMailbox], accounts: dict[str, Any]
) -> None:
    from agents.ad_provisioner.factory import directory_from_config
    from agents.ad_provisioner.matching import existing_account, mailbox_addresses
    from agents.ad_provisioner.ports import Lookup

    section = config.require("active_directory", needed_by="the pre-flight")
    directory = directory_from_config(section)
    try:
        plans = {m.primary_smtp_address: MailboxPlan(m.primary_smtp_address) for m in mailboxes}
        report.mailboxes = list(plans.values())
        for start in range(0, len(mailboxes), 100):
            chunk = mailboxes[start : start + 100]
            found = directory.find_users([Lookup(mailbox_addresses(m)) for m in chunk])
            for mailbox in chunk:
                plan = plans[mailbox.primary_smtp_address]
                try:
                    user = existing_account(found, mailbox)
                except HandlerError as exc:
                    plan.problem = exc.reason
                    continue
                if user is None:
                    plan.account = f"create in {section.users_ou}"
                else:
                    plan.account = f"use {user.distinguished_name}"
                    accounts[mailbox.primary_smtp_address] = user
        created = sum(1 for p in plans.values() if p.account.startswith("create"))
        report.add(
            1,
            "directory accounts",
            "fail" if any(p.problem for p in plans.values()) else "pass",
            f"{len(accounts)} matched, {created} to create",
        )
    finally:
        directory.close()


# --------------------------------------------------------------------------- on-prem Exchange


def _onprem(
    config: HomeboundConfig,
    request: WaveRequestedData,
    report: PreflightReport,
    mailboxes: list[CloudMailbox],
    accounts: dict[str, Any],
    mrs_limit: list[int],
) -> None:
    from agents.exchange_configurator.adapters import ShellExchange
    from agents.exchange_configurator.org_plan import (
        OrgTarget,
        describe,
        plan,
        ready_facts,
        unknown_databases,
        warnings,
    )
    from agents.exchange_configurator.recipients import differences, mail_enable_item
    from agents.shared.exchange_shell import ExchangeShell
    from contracts.events import AdAccount

    onprem = config.require("onprem_exchange", needed_by="the pre-flight")
    cloud = config.require("exchange_online", needed_by="the pre-flight")
    shell = ExchangeShell.from_section(onprem)
    try:
        exchange = ShellExchange(shell)
        org = exchange.inspect_org()
        target = OrgTarget(
            domains=tuple(request.domains),
            routing_domain=cloud.routing_domain,
            send_connector_name=onprem.send_connector_name,
            databases=tuple(request.target_databases or onprem.target_databases)
            + tuple(request.target_archive_databases),
            target_delivery_domain=onprem.target_delivery_domain,
        )
        unknown = unknown_databases(org, target)
        report.add(
            4,
            "target databases",
            "fail" if unknown else "pass",
            f"unknown: {', '.join(unknown)} (known: {', '.join(d.name for d in org.mailbox_databases)})"
            if unknown
            else ", ".join(target.databases) or "any mounted database",
        )
        prepare = plan(org, target)
        report.changes["on-prem Exchange"] = describe(prepare)
        disabled = [v.identity for v in org.ews_virtual_directories if not v.mrsproxy_enabled]
        report.add(
            3,
            "MRSProxy",
            "plan" if disabled else "pass",
            f"to enable on {', '.join(disabled)}" if disabled else "enabled on every EWS virtual directory",
        )
        for warning in warnings(org, target):
            report.add(8 if "recipient validation" in warning else 2, "organisation", "warn", warning)
        mrs_limit.append(ready_facts(org, target, onprem.mrsproxy_max_connections)[2])
        _recipients(exchange, report, mailboxes, accounts, request, differences, mail_enable_item, AdAccount)
    finally:
        shell.close()


def _recipients(
    exchange: Any,
    report: PreflightReport,
    mailboxes: list[CloudMailbox],
    accounts: dict[str, Any],
    request: WaveRequestedData,
    differences: Any,
    mail_enable_item: Any,
    ad_account: Any,
) -> None:
    """For accounts that exist: what mail-enabling still has to change (check 1 and 2)."""
    plans = {p.address: p for p in report.mailboxes}
    matched = [m for m in mailboxes if m.primary_smtp_address in accounts]
    for mailbox in mailboxes:
        if mailbox.primary_smtp_address not in accounts and not plans[mailbox.primary_smtp_address].problem:
            plans[mailbox.primary_smtp_address].onprem = "mail-enable the new account"
    for start in range(0, len(matched), 500):
        chunk = matched[start : start + 500]
        guids = [accounts[m.primary_smtp_address].object_guid for m in chunk]
        results = {r.identity: r for r in exchange.read_recipients(guids)}
        for mailbox in chunk:
            user = accounts[mailbox.primary_smtp_address]
            result = results.get(user.object_guid)
            plan = plans[mailbox.primary_smtp_address]
            if result is None or result.recipient is None:
                plan.onprem = "mail-enable"
                continue
            item = mail_enable_item(
                MailboxProvisionedData(
                    mailbox=mailbox,
                    account=ad_account(
                        distinguished_name=user.distinguished_name,
                        object_guid=user.object_guid,
                        sam_account_name=user.sam_account_name,
                        created=False,
                    ),
                )
            )
            found = differences(item, result.recipient, request.mail_enable_mode)
            kind = str(result.recipient.recipient_type_details)
            if "Mailbox" in kind and "Remote" not in kind:
                plan.problem = f"already has a primary mailbox on-prem ({kind})"
            elif found:
                plan.onprem = "update: " + "; ".join(found)
            else:
                plan.onprem = "ready (no change)"
    problems = [p for p in report.mailboxes if p.problem]
    report.add(
        2,
        "on-prem recipients",
        "fail" if problems else "pass",
        f"{len(problems)} mailbox(es) cannot move as they stand"
        if problems
        else "every matched account can be mail-enabled for the move",
    )


# --------------------------------------------------------------------------- DNS


def _dns(config: HomeboundConfig, request: WaveRequestedData, report: PreflightReport) -> None:
    from agents.dns_cutover.factory import dns_server, targets
    from agents.dns_cutover.plan import prepare
    from agents.dns_cutover.spf import SpfError

    server = dns_server(config)
    goal = targets(config)
    changes: list[str] = []
    for domain in request.domains:
        records = server.read(domain)
        try:
            change = prepare(records, goal)
        except SpfError as exc:
            report.add(7, f"SPF of {domain}", "fail", exc.reason)
            continue
        except HandlerError as exc:
            report.add(7, f"SPF of {domain}", "fail", exc.reason)
            continue
        changes += [f"{domain}: {word}" for word in change.words]
        report.add(
            7,
            f"SPF and MX TTL of {domain}",
            "plan" if not change.is_empty else "pass",
            "SPF valid, at most 10 lookups, covering both sides; MX TTL lowered"
            if not change.is_empty
            else "already prepared",
        )
    report.changes["DNS"] = changes
