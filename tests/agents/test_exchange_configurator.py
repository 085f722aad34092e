"""The exchange-configurator through its real factory: pywinrm, the on-prem stand-in, Samba, RabbitMQ.

Every test gets a fresh stand-in (its own organisation), its own OU in the
shared Samba and its own vhost. What the agent did is checked in the systems
themselves: the organisation through the stand-in, the recipients with
ldap3, the scripts through the stand-in's log of every script it ran.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap3
import pytest
from ldap3.utils.dn import escape_rdn

from agents.exchange_configurator.adapters import ShellExchange
from agents.exchange_configurator.batching import Batcher
from agents.runtime.config import HomeboundConfig
from agents.runtime.runner import AgentDefinition
from agents.shared.exchange_shell import ExchangeShell, ShellSettings
from contracts.envelope import Event, new_event
from contracts.events import (
    AdAccount,
    ArchiveStatus,
    CloudMailbox,
    MailboxProvisioned,
    MailboxProvisionedData,
    MailEnableMode,
    RecipientTypeDetails,
    WaveRequested,
    WaveRequestedData,
)
from contracts.fields import NIL_GUID
from contracts.onprem import (
    AcceptedDomainChange,
    DomainType,
    MailEnableItem,
    MailEnableResult,
    OrgPrepareRequest,
    SendConnectorChange,
)
from events.amqp import AmqpSettings
from events.publisher import Publisher
from events.replay import Selection, list_dead_letters, replay
from lab.samba import SambaDC
from tests.agents.conftest import OnpremLab
from tests.agents.harness import config_for, running_agent
from tests.conftest import ldap_entries
from tests.events.broker import Spy
from tests.lab.onprem_client import read_user, template, text_values

AGENT = "exchange-configurator"
DOMAIN = "fabrikam.example"
ROUTING = "fabrikam.mail.onmicrosoft.com"
TEMPLATES = {template(op) for op in ("org-inspect", "org-prepare", "mail-enable", "recipient-read")}
HOSTILE = ["x'; Remove-Mailbox -Identity * -Confirm:$false #", '$(Stop-Computer -Force) "`n', "a|b & c; <d>"]
EXCHANGE_ONLINE = {"tenant": "fabrikam.onmicrosoft.com", "client_id": "test-client",
                   "routing_domain": ROUTING}


# ---------------------------------------------------------------------- helpers


@dataclass
class Running:
    publisher: Publisher
    spy: Spy
    definition: AgentDefinition
    seen: list[dict[str, Any]]

    def publish(self, *events: Event) -> None:
        self.publisher.publish_events(list(events))

    def wait_for(self, event_type: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        """Every event of *event_type* seen so far, once there are at least *count*."""
        self.seen += self.spy.collect(lambda s: len(of_type(self.seen + s, event_type)) >= count,
                                      timeout=timeout)
        return of_type(self.seen, event_type)


def of_type(seen: Sequence[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in seen if e["type"] == event_type]


def agent_config(broker: AmqpSettings, tmp_path: Path, lab: OnpremLab, **onprem: Any) -> HomeboundConfig:
    return config_for(broker, tmp_path / "agent-state", onprem_exchange=lab.section(**onprem),
                      exchange_online=EXCHANGE_ONLINE)


@contextmanager
def configurator(config: HomeboundConfig, broker: AmqpSettings) -> Iterator[Running]:
    """The agent from its real factory, consuming on a thread (harness.running_agent)."""
    with running_agent(AGENT, config, broker) as agent:
        yield Running(agent.publisher, agent.spy, agent.definition, [])


@dataclass(frozen=True)
class Person:
    dn: str
    guid: uuid.UUID
    sam: str
    alias: str
    display: str


def make_people(samba: SambaDC, ou: str, displays: Sequence[str], *, token: str) -> list[Person]:
    """Plain AD users (not mail-enabled), as the ad-provisioner leaves them."""
    people: list[Person] = []
    with samba.connect() as conn:
        for index, display in enumerate(displays):
            dn = f"CN={escape_rdn(display[:40])} {index},{ou}"
            sam = f"x{token}{index:03d}"
            alias = f"o'brien.{token}" if index == 1 else f"mb{token}.{index:03d}"
            assert conn.add(dn, ["top", "person", "organizationalPerson", "user"],
                            {"sAMAccountName": sam, "displayName": display}), conn.result
            conn.search(dn, "(objectClass=user)", ldap3.BASE, attributes=["objectGUID"])
            [entry] = ldap_entries(conn)
            guid = uuid.UUID(bytes_le=entry["raw_attributes"]["objectGUID"][0])  # type: ignore[index]
            people.append(Person(dn, guid, sam, alias, display))
    return people


def provisioned(person: Person, *, archive: bool = False, extra: Sequence[str] = (), wave: str = "w-exconf",
                mode: MailEnableMode | None = None) -> MailboxProvisioned:
    guid = uuid.uuid4()
    legacy = f"/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={guid.hex}"
    mailbox = CloudMailbox(
        primary_smtp_address=f"{person.alias}@{DOMAIN}", alias=person.alias, display_name=person.display,
        user_principal_name=f"{person.alias}@{DOMAIN}", exchange_guid=guid,
        archive_guid=uuid.uuid4() if archive else NIL_GUID,
        archive_status=ArchiveStatus.ACTIVE if archive else ArchiveStatus.NONE,
        legacy_exchange_dn=f"{legacy}-{person.alias}",
        email_addresses=[f"SMTP:{person.alias}@{DOMAIN}", f"smtp:{person.alias}@{ROUTING}",
                         f"smtp:{person.alias}@fabrikam.onmicrosoft.com", f"SPO:SPO_{guid}@SPO_tenant",
                         f"X500:/o=First Organization/ou=Old/cn=Recipients/cn={person.alias}", *extra],
        recipient_type_details=RecipientTypeDetails.USER_MAILBOX, routing_address=f"{person.alias}@{ROUTING}",
    )
    account = AdAccount(distinguished_name=person.dn, object_guid=person.guid, sam_account_name=person.sam,
                        created=True)
    data = (MailboxProvisionedData(mailbox=mailbox, account=account) if mode is None
            else MailboxProvisionedData(mailbox=mailbox, account=account, mail_enable_mode=mode))
    return new_event(MailboxProvisioned, wave_id=wave, producer="test", data=data, mailbox_id=guid)


def again(event: MailboxProvisioned) -> MailboxProvisioned:
    """The same mailbox in a new event (a second run of the wave), not a duplicate delivery."""
    return new_event(MailboxProvisioned, wave_id=event.wave_id, producer="test", data=event.data,
                     mailbox_id=event.mailbox_id)


def wave(name: str, **data: Any) -> WaveRequested:
    return new_event(WaveRequested, wave_id=name, producer="test",
                     data=WaveRequestedData(domains=[DOMAIN], **data))


def runs(lab: OnpremLab, op: str) -> list[dict[str, Any]]:
    return [entry for entry in lab.scripts() if entry["op"] == op]


def token() -> str:
    return uuid.uuid4().hex[:6]


# ---------------------------------------------------------------------- wave.requested


def test_a_wave_prepares_a_fresh_org_once_and_a_second_wave_changes_nothing(
    onprem: OnpremLab, broker: AmqpSettings, tmp_path: Path,
) -> None:
    # Basic over HTTPS, the server certificate verified against the lab CA
    config = agent_config(broker, tmp_path, onprem, url=onprem.https_url, auth="basic",
                          target_databases=["DB01", "DB02"])
    with configurator(config, broker) as agent:
        agent.publish(wave("w-first"))
        [first] = agent.wait_for("wave.onprem_ready", 1)
        agent.publish(wave("w-second"))
        second = agent.wait_for("wave.onprem_ready", 2)[1]
        agent.publish(wave("w-third", target_databases=["DB03"]))
        third = agent.wait_for("wave.onprem_ready", 3)[2]
        agent.publish(wave("w-unknown", target_databases=["DB01", "DB99"]))
        [failed] = agent.wait_for("wave.failed", 1)

    assert first["data"]["changes"] == [
        f"Accepted domain '{DOMAIN}' added as InternalRelay",
        "Send connector 'Homebound to Exchange Online' created",
        "MRSProxy enabled on 'EX01\\EWS (Default Web Site)'",
        "MRSProxy enabled on 'EX02\\EWS (Default Web Site)'",
    ]
    assert first["data"]["mrsproxy_servers"] == ["EX01", "EX02"]
    assert first["data"]["mounted_databases"] == ["DB01", "DB02"]
    assert first["data"]["max_mrs_connections"] == 100
    [warning] = first["data"]["warnings"]
    assert "recipient validation is off" in warning and "Hop count exceeded" in warning

    assert second["data"]["changes"] == []  # idempotent
    assert second["data"]["warnings"] == first["data"]["warnings"]
    assert third["data"]["changes"] == ["Database 'DB03' mounted"]
    assert third["data"]["mounted_databases"] == ["DB03"]
    assert failed["wave_id"] == "w-unknown" and failed["data"]["error_class"] == "permanent"
    assert "DB99" in failed["data"]["reason"] and "DB01, DB02, DB03" in failed["data"]["reason"]

    org = onprem.stand_in.state()["org"]
    assert {(d["domain_name"], d["domain_type"]) for d in org["accepted_domains"]} >= {
        (DOMAIN, "InternalRelay")}
    assert [(c["name"], c["address_spaces"]) for c in org["send_connectors"]] == [
        ("Homebound to Exchange Online", [f"SMTP:{ROUTING};1"])]
    assert all(v["mrsproxy_enabled"] for v in org["ews_virtual_directories"])
    assert all(d["mounted"] for d in org["mailbox_databases"])
    # prepared once (w-first) and DB03 once (w-third); the second wave only looked
    assert len(runs(onprem, "org-prepare")) == 2
    assert {e["user"] for e in onprem.scripts()} == {"LAB\\hbadmin"}


def test_an_existing_covering_send_connector_and_internal_relay_domain_are_left_alone(
    onprem: OnpremLab, broker: AmqpSettings, tmp_path: Path,
) -> None:
    with ExchangeShell(ShellSettings(url=onprem.http_url, username="LAB\\hbadmin",
                                     password=onprem.password)) as shell:
        shell.run(OrgPrepareRequest(  # an administrator prepared part of it by hand
            accepted_domains=[AcceptedDomainChange(domain_name=DOMAIN,
                                                   domain_type=DomainType.INTERNAL_RELAY)],
            send_connectors=[SendConnectorChange(name="Existing to EXO",
                                                 address_spaces=["*.mail.onmicrosoft.com"])],
        ))
    with configurator(agent_config(broker, tmp_path, onprem, mrsproxy_max_connections=20), broker) as agent:
        agent.publish(wave("w-existing"))
        [ready] = agent.wait_for("wave.onprem_ready", 1)
    assert ready["data"]["changes"] == ["MRSProxy enabled on 'EX01\\EWS (Default Web Site)'",
                                        "MRSProxy enabled on 'EX02\\EWS (Default Web Site)'"]
    assert ready["data"]["mounted_databases"] == ["DB01", "DB02"]  # no target given: every mounted one
    assert ready["data"]["max_mrs_connections"] == 20  # the configuration may only lower it
    assert [c["name"] for c in onprem.stand_in.state()["org"]["send_connectors"]] == ["Existing to EXO"]


# ---------------------------------------------------------------------- mailbox.provisioned


def test_forty_mailboxes_are_mail_enabled_in_few_commands_and_verified_in_samba(
    samba: SambaDC, test_ou: str, onprem: OnpremLab, broker: AmqpSettings, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    t = token()
    displays = [f"Person {i}" for i in range(40)]
    displays[0], displays[1], displays[2:5] = "Zoë Ångström-Núñez 李雷", "Seán O'Brien", HOSTILE
    people = make_people(samba, test_ou, displays, token=t)
    events = [provisioned(p, archive=i % 4 == 0) for i, p in enumerate(people)]
    with configurator(agent_config(broker, tmp_path, onprem), broker) as agent:
        started = time.perf_counter()
        agent.publish(*events)
        enabled = agent.wait_for("mailbox.mail_enabled", 40)
        elapsed = time.perf_counter() - started
        commands = {op: len(runs(onprem, op)) for op in ("recipient-read", "mail-enable")}
        stats = agent.definition.extra["batch_stats"]()  # type: ignore[operator]
        with samba.connect() as conn:
            usn_before = {p.dn: text_values(read_user(conn, p.dn), "uSNChanged") for p in people}

        agent.publish(*[again(e) for e in events])  # the wave runs again: nothing left to do
        rerun = agent.wait_for("mailbox.mail_enabled", 80)[40:]

    assert not of_type(agent.seen, "mailbox.failed")
    assert 1 <= commands["mail-enable"] <= 4 and commands["recipient-read"] == commands["mail-enable"]
    assert stats["mail-user"].items == 80 and stats["mail-user"].largest >= 10

    by_mailbox = {uuid.UUID(e["mailbox_id"]): e["data"] for e in enabled}
    archives = onprem.stand_in.state()["org"]["archive_guids"]
    with samba.connect() as conn:
        for event, person in zip(events, people, strict=True):
            mailbox = event.data.mailbox
            raw = read_user(conn, person.dn)
            assert uuid.UUID(bytes_le=raw["msExchMailboxGuid"][0]) == mailbox.exchange_guid
            proxies = {p.lower() for p in text_values(raw, "proxyAddresses")}
            assert {a.lower() for a in mailbox.smtp_addresses} <= proxies
            assert mailbox.x500_address.lower() in proxies
            assert f"x500:/o=first organization/ou=old/cn=recipients/cn={person.alias}".lower() in proxies
            assert not any(p.startswith("spo:") for p in proxies)  # only SMTP and X500 travel
            assert f"SMTP:{mailbox.primary_smtp_address}" in text_values(raw, "proxyAddresses")
            assert text_values(raw, "targetAddress") == [f"SMTP:{mailbox.routing_address}"]
            assert text_values(raw, "msExchRecipientTypeDetails") == ["128"]
            assert text_values(raw, "displayName") == [person.display]  # never written
            archive = str(mailbox.archive_guid) if mailbox.has_archive else None
            assert archives.get(str(person.guid)) == archive
            data = by_mailbox[mailbox.exchange_guid]
            assert data["account"]["object_guid"] == str(person.guid)
            assert data["mail_enable_mode"] == "mail-user"
            assert data["changes"][0] == (
                f"mail-enabled as MailUser (routing address SMTP:{mailbox.routing_address})")
            assert f"stamped ExchangeGuid {mailbox.exchange_guid}" in data["changes"]
            assert (f"stamped ArchiveGuid {mailbox.archive_guid}" in data["changes"]) == mailbox.has_archive
        usn_after = {p.dn: text_values(read_user(conn, p.dn), "uSNChanged") for p in people}

    assert all(e["data"]["changes"] == [] for e in rerun)  # idempotent: nothing was changed
    assert usn_after == usn_before
    assert len(runs(onprem, "mail-enable")) == commands["mail-enable"]  # only reads the second time

    scripts = onprem.scripts()
    assert all(entry["script"] in TEMPLATES for entry in scripts)  # byte-identical templates only
    logged = json.dumps(scripts, ensure_ascii=False)
    for person, event in zip(people, events, strict=True):
        for value in (person.alias, person.display, str(person.guid), str(event.data.mailbox.exchange_guid)):
            assert value not in logged
    with capsys.disabled():
        print(f"\n[measure] 40 mailboxes mail-enabled end to end in {elapsed:.2f} s "
              f"({40 / elapsed:.0f}/s): {commands['mail-enable']} mail-enable + "
              f"{commands['recipient-read']} recipient-read commands, "
              f"largest batch {stats['mail-user'].largest}, "
              f"{stats['mail-user'].seconds_in_run:.2f} s in commands")


def test_a_proxy_conflict_is_dead_lettered_then_replayed_after_the_fix(
    samba: SambaDC, test_ou: str, onprem: OnpremLab, broker: AmqpSettings, tmp_path: Path,
) -> None:
    t = token()
    holder, person, mailbox_user = make_people(samba, test_ou, ["Holder", "Conflicted", "Has a mailbox"],
                                               token=t)
    shared = f"shared.{t}@{DOMAIN}"
    with samba.connect() as conn:
        conn.modify(holder.dn, {"proxyAddresses": [(ldap3.MODIFY_REPLACE, [f"smtp:{shared}"])]})
        conn.modify(mailbox_user.dn, {"msExchRecipientTypeDetails": [(ldap3.MODIFY_REPLACE, [1])]})
    conflicted = provisioned(person, extra=[f"smtp:{shared}"])
    mailbox_kind = provisioned(mailbox_user)
    with configurator(agent_config(broker, tmp_path, onprem), broker) as agent:
        agent.publish(conflicted, mailbox_kind)
        failures = {e["mailbox_id"]: e["data"] for e in agent.wait_for("mailbox.failed", 2)}
        conflict = failures[str(conflicted.mailbox_id)]
        assert conflict["error_class"] == "permanent" and conflict["step"] == "mail-enable"
        assert conflict["error_type"] == "ProxyAddressExistsException"
        assert f'The proxy address "smtp:{shared}" is already being used' in conflict["reason"]
        assert conflict["remediation"].startswith("another directory object holds this proxy address")
        wrong_kind = failures[str(mailbox_kind.mailbox_id)]
        assert wrong_kind["error_class"] == "needs-human"
        assert "is a UserMailbox, not a MailUser" in wrong_kind["reason"]
        assert "decide which object is kept" in wrong_kind["remediation"]

        letters = {letter.mailbox_id: letter for letter in list_dead_letters(broker, [AGENT])}
        assert letters[str(conflicted.mailbox_id)].error_class == "permanent"
        assert "ProxyAddressExistsException" in letters[str(conflicted.mailbox_id)].reason
        assert letters[str(mailbox_kind.mailbox_id)].error_class == "needs-human"

        with samba.connect() as conn:  # the operator removes the address from the other object
            conn.modify(holder.dn, {"proxyAddresses": [(ldap3.MODIFY_REPLACE, [])]})
        replayed = replay(broker, [AGENT], Selection(mailbox=conflicted.data.mailbox.primary_smtp_address),
                          requested_by="test")
        assert [letter.event_id for letter in replayed] == [str(conflicted.event_id)]
        [done] = agent.wait_for("mailbox.mail_enabled", 1)
    assert done["mailbox_id"] == str(conflicted.mailbox_id)
    assert f"stamped ExchangeGuid {conflicted.data.mailbox.exchange_guid}" in done["data"]["changes"]
    with samba.connect() as conn:
        assert f"smtp:{shared}" in text_values(read_user(conn, person.dn), "proxyAddresses")


def test_a_failed_script_is_retried_and_a_tampered_read_back_is_refused(
    samba: SambaDC, test_ou: str, onprem: OnpremLab, broker: AmqpSettings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    t = token()
    people = make_people(samba, test_ou, [f"Retry {i}" for i in range(6)], token=t)
    events = [provisioned(p) for p in people[:5]]
    remote = provisioned(people[5], mode=MailEnableMode.REMOTE_MAILBOX)
    onprem.control("POST", "faults", {"operation": "mail-enable", "error": {
        "type": "ADServerSettingsChangedException", "message": "The domain controller went away."}})
    tampered_guid = uuid.uuid4()
    real_mail_enable = ShellExchange.mail_enable

    def tampering(self: ShellExchange, mode: MailEnableMode, items: Sequence[MailEnableItem]
                  ) -> list[MailEnableResult]:
        results = real_mail_enable(self, mode, items)
        if mode is not MailEnableMode.REMOTE_MAILBOX:
            return results
        # something on the server rewrote the GUID between the change and the read-back
        return [r.model_copy(update={"recipient": r.recipient.model_copy(
                    update={"exchange_guid": tampered_guid})}) if r.recipient else r for r in results]

    with configurator(agent_config(broker, tmp_path, onprem), broker) as agent:
        agent.publish(*events)
        enabled = agent.wait_for("mailbox.mail_enabled", 5)
        monkeypatch.setattr(ShellExchange, "mail_enable", tampering)
        agent.publish(remote)
        [refused] = agent.wait_for("mailbox.failed", 1)
    assert {e["mailbox_id"] for e in enabled} == {str(e.mailbox_id) for e in events}
    exits = [e["exit_code"] for e in runs(onprem, "mail-enable")]
    assert exits[0] == 1 and exits[1:] and all(code == 0 for code in exits[1:])  # retried, then fine
    assert refused["mailbox_id"] == str(remote.mailbox_id)
    assert refused["data"]["error_class"] == "permanent"
    assert refused["data"]["error_type"] == "ReadBackMismatch"
    wanted = remote.data.mailbox.exchange_guid
    assert f"ExchangeGuid is {tampered_guid}, not {wanted}" in refused["data"]["reason"]
    with samba.connect() as conn:  # the remote-mailbox mode was used (the wave asked for it)
        assert text_values(read_user(conn, people[5].dn), "msExchRecipientTypeDetails") == ["2147483648"]


# ---------------------------------------------------------------------- the batcher alone


def test_the_batcher_groups_concurrent_items_and_isolates_a_failed_batch() -> None:
    calls: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if 13 in items:
            raise RuntimeError("the whole command failed")
        time.sleep(0.05)
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(run, max_size=10, max_wait=0.2)
    results: dict[int, int | str] = {}

    def submit(i: int) -> None:
        try:
            results[i] = batcher.submit(i)
        except RuntimeError as exc:
            results[i] = str(exc)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(calls) <= 5 and max(len(c) for c in calls) == 10
    failed_batch = next(c for c in calls if 13 in c)
    for i in range(25):
        assert results[i] == ("the whole command failed" if i in failed_batch else i * 10)
    assert batcher.stats.items == 25 and batcher.stats.batches == len(calls)
