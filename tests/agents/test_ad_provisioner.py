"""The ad-provisioner against the real Samba AD DC and the real RabbitMQ.

Each test gets its own OU as `users_ou` and its own vhost; the agent runs
through its real factory (LDAPS with the lab CA verified). Addresses carry a
per-test token so tests never see each other's accounts: look-ups are scoped
to the whole base DN, as in production. The pure parts (naming, filters,
batching) are tested without I/O at the end.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import ldap3
import pytest
import trustme

from agents.ad_provisioner import naming
from agents.ad_provisioner.adapters import LdapDirectory, lookup_filter
from agents.ad_provisioner.batching import LookupBatcher
from agents.ad_provisioner.factory import directory_from_config
from agents.ad_provisioner.matching import creation_note
from agents.ad_provisioner.ports import Lookup, NewUser
from agents.runtime.config import ActiveDirectorySection, HomeboundConfig
from agents.runtime.runner import AgentDefinition
from contracts.envelope import new_event
from contracts.events import CloudMailbox, MailboxDiscovered
from events.amqp import AmqpSettings
from events.errors import PermanentError, TransientError
from lab.samba import SambaDC
from tests.agents.harness import RunningAgent, config_for, running_agent
from tests.conftest import ldap_entries
from tests.events.broker import drain_queue

DOMAIN = "fabrikam.example"
READ_BACK = ["cn", "displayName", "userPrincipalName", "mail", "sAMAccountName", "userAccountControl",
             "pwdLastSet", "objectGUID", "givenName", "sn", "info", "uSNChanged"]


# ---------------------------------------------------------------------- helpers


def cloud_mailbox(alias: str, display_name: str, *, secondary: Sequence[str] = (),
                  local_part: str | None = None) -> MailboxDiscovered:
    guid = uuid.uuid4()
    primary = f"{local_part or alias}@{DOMAIN}"
    data = CloudMailbox(
        primary_smtp_address=primary, alias=alias, display_name=display_name,
        user_principal_name=primary, exchange_guid=guid,
        legacy_exchange_dn=f"/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn={guid.hex}",
        email_addresses=[f"SMTP:{primary}", *(f"smtp:{a}" for a in secondary),
                         f"smtp:{alias}@fabrikam.mail.onmicrosoft.com"],
        recipient_type_details="UserMailbox", routing_address=f"{alias}@fabrikam.mail.onmicrosoft.com",
    )
    return new_event(MailboxDiscovered, wave_id="w-test", producer="test", data=data, mailbox_id=guid)


def again(event: MailboxDiscovered) -> MailboxDiscovered:
    """The same mailbox in a new event (a second export, a replayed wave)."""
    return new_event(MailboxDiscovered, wave_id=event.wave_id, producer="test", data=event.data,
                     mailbox_id=event.mailbox_id)


def token() -> str:
    return uuid.uuid4().hex[:8]


def ad_section(samba: SambaDC, users_ou: str, **overrides: Any) -> dict[str, Any]:
    s = samba.settings
    return {"url": s.ldaps_url, "bind_user": s.bind_user, "password": s.password(),
            "ca_file": str(s.ca_file), "base_dn": s.base_dn, "users_ou": users_ou, **overrides}


def agent_config(broker: AmqpSettings, tmp_path: Path, section: dict[str, Any],
                 workers: int = 4) -> HomeboundConfig:
    config = config_for(broker, tmp_path, active_directory=section)
    return config.model_copy(update={"runtime": config.runtime.model_copy(update={"workers": workers})})


@contextmanager
def running_provisioner(config: HomeboundConfig, broker: AmqpSettings
                        ) -> Iterator[tuple[RunningAgent, AgentDefinition]]:
    """harness.running_agent, with the definition (the adapter's counters) handed out too."""
    with running_agent("ad-provisioner", config, broker) as agent:
        yield agent, agent.definition


def provisioner(samba: SambaDC, users_ou: str, broker: AmqpSettings, tmp_path: Path
                ) -> AbstractContextManager[tuple[RunningAgent, AgentDefinition]]:
    return running_provisioner(agent_config(broker, tmp_path, ad_section(samba, users_ou)), broker)


def of_type(seen: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in seen if e["type"] == event_type]


def provisioned(agent: RunningAgent, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    seen = agent.spy.collect(lambda s: len(of_type(s, "mailbox.provisioned")) >= count, timeout=timeout)
    return [e["data"]["account"] for e in of_type(seen, "mailbox.provisioned")]


def by_mailbox(seen: list[dict[str, Any]]) -> dict[uuid.UUID, dict[str, Any]]:
    return {uuid.UUID(e["mailbox_id"]): e["data"]["account"] for e in of_type(seen, "mailbox.provisioned")}


def failed(agent: RunningAgent, timeout: float = 30) -> dict[str, Any]:
    seen = agent.spy.collect(lambda s: bool(of_type(s, "mailbox.failed")), timeout=timeout)
    return dict(of_type(seen, "mailbox.failed")[0]["data"])


def users_in(samba: SambaDC, ou: str) -> list[dict[str, Any]]:
    with samba.connect() as conn:
        conn.search(ou, "(objectClass=user)", attributes=READ_BACK)
        return [dict(e["attributes"], dn=e["dn"]) for e in ldap_entries(conn)]


def read(samba: SambaDC, dn: str) -> dict[str, Any]:
    with samba.connect() as conn:
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=READ_BACK)
        [entry] = ldap_entries(conn)
        return dict(entry["attributes"], dn=entry["dn"])


def make_user(samba: SambaDC, ou: str, cn: str, **attributes: Any) -> str:
    dn = f"CN={ldap3.utils.dn.escape_rdn(cn)},{ou}"
    with samba.connect() as conn:
        conn.add(dn, ["top", "person", "organizationalPerson", "user"],
                 {"sAMAccountName": f"p{token()}", **attributes})
    return dn


# ---------------------------------------------------------------------- creating


def test_a_discovered_mailbox_gets_a_new_enabled_account_with_a_password(
    samba: SambaDC, test_ou: str, broker: AmqpSettings, tmp_path: Path
) -> None:
    t = token()
    event = cloud_mailbox(f"zoe.angstrom.{t}", "Zoë Ångström")
    with provisioner(samba, test_ou, broker, tmp_path) as (agent, _):
        agent.publisher.publish_events([event])
        [account] = provisioned(agent, 1)
    user = read(samba, account["distinguished_name"])
    assert account["distinguished_name"] == f"CN=Zoë Ångström,{test_ou}"
    assert account["created"] is True
    assert uuid.UUID(account["object_guid"]) == uuid.UUID(user["objectGUID"])
    assert account["sam_account_name"] == user["sAMAccountName"] == f"zoe.angstrom.{t}"[:20]
    assert user["userPrincipalName"] == user["mail"] == f"zoe.angstrom.{t}@{DOMAIN}"
    assert user["displayName"] == "Zoë Ångström"
    assert (user["givenName"], user["sn"]) == ("Zoë", "Ångström")
    assert user["userAccountControl"] == 512  # enabled, password required
    assert user["pwdLastSet"].year > 1601  # unicodePwd was set (0 reads back as 1601-01-01)
    assert user["info"] == creation_note(event.data)


def test_an_existing_user_is_matched_by_upn_mail_or_secondary_proxy_and_left_untouched(
    samba: SambaDC, test_ou: str, broker: AmqpSettings, tmp_path: Path
) -> None:
    t = token()
    by_upn, by_mail, by_proxy = (cloud_mailbox(f"{kind}.{t}", f"Existing {kind}",
                                               secondary=[f"alt.{kind}.{t}@{DOMAIN}"])
                                 for kind in ("upn", "mail", "proxy"))
    existing = {
        by_upn.mailbox_id: make_user(samba, test_ou, "Has UPN", userPrincipalName=f"UPN.{t}@{DOMAIN}"),
        by_mail.mailbox_id: make_user(samba, test_ou, "Has mail", mail=f"mail.{t}@{DOMAIN}"),
        # the cloud's secondary address is this user's primary: matched case-insensitively
        by_proxy.mailbox_id: make_user(samba, test_ou, "Has proxy",
                                       proxyAddresses=[f"SMTP:ALT.proxy.{t}@{DOMAIN}"]),
    }
    before = {dn: read(samba, dn)["uSNChanged"] for dn in existing.values()}
    with provisioner(samba, test_ou, broker, tmp_path) as (agent, _):
        agent.publisher.publish_events([by_upn, by_mail, by_proxy])
        seen = agent.spy.collect(lambda s: len(of_type(s, "mailbox.provisioned")) >= 3)
    results = by_mailbox(seen)
    for mailbox_id, dn in existing.items():
        assert results[mailbox_id]["distinguished_name"] == dn
        assert results[mailbox_id]["created"] is False
        assert uuid.UUID(results[mailbox_id]["object_guid"]) == uuid.UUID(read(samba, dn)["objectGUID"])
    assert {dn: read(samba, dn)["uSNChanged"] for dn in existing.values()} == before
    assert len(users_in(samba, test_ou)) == 3


def test_the_same_mailbox_delivered_again_creates_nothing_new(
    samba: SambaDC, test_ou: str, broker: AmqpSettings, tmp_path: Path
) -> None:
    first = cloud_mailbox(f"twice.{token()}", "Delivered Twice")
    with provisioner(samba, test_ou, broker, tmp_path) as (agent, _):
        agent.publisher.publish_events([first, again(first)])  # two at once: they race
        agent.publisher.publish_events([again(first)])
        accounts = provisioned(agent, 3)
    assert len({a["distinguished_name"] for a in accounts}) == 1
    assert len({a["object_guid"] for a in accounts}) == 1
    assert all(a["created"] is True for a in accounts)  # it still says who made it
    assert len(users_in(samba, test_ou)) == 1


def test_an_account_left_half_made_by_a_crash_is_finished_on_redelivery(
    samba: SambaDC, test_ou: str, broker: AmqpSettings, tmp_path: Path
) -> None:
    event = cloud_mailbox(f"crash.{token()}", "Crashed Midway")
    mailbox = event.data
    directory = directory_from_config(ActiveDirectorySection.model_validate(ad_section(samba, test_ou)))
    try:  # what a run that died right after the add leaves behind
        dn = directory.create_user(test_ou, NewUser(
            common_name="Crashed Midway", sam_account_name=mailbox.alias[:20],
            user_principal_name=mailbox.user_principal_name, display_name=mailbox.display_name,
            mail=mailbox.primary_smtp_address, note=creation_note(mailbox)))
    finally:
        directory.close()
    assert read(samba, dn)["userAccountControl"] & 2  # disabled, no password yet
    with provisioner(samba, test_ou, broker, tmp_path) as (agent, _):
        agent.publisher.publish_events([event])
        [account] = provisioned(agent, 1)
    user = read(samba, dn)
    assert (account["distinguished_name"], account["created"]) == (dn, True)
    assert user["userAccountControl"] == 512
    assert user["pwdLastSet"].year > 1601
    assert len(users_in(samba, test_ou)) == 1


# ---------------------------------------------------------------------- batching


def test_thirty_mailboxes_at_once_need_far_fewer_directory_searches_than_mailboxes(
    samba: SambaDC, test_ou: str, broker: AmqpSettings, tmp_path: Path
) -> None:
    t = token()
    events = [cloud_mailbox(f"b{t}.{n}", f"Batch Person {n}") for n in range(30)]
    # 32 workers (the prefetch): all thirty handlers are in flight together, as when an
    # export floods the queue; steady-state numbers are in the agent's report
    config = agent_config(broker, tmp_path, ad_section(samba, test_ou), workers=32)
    with running_provisioner(config, broker) as (agent, definition):
        started = time.perf_counter()
        agent.publisher.publish_events(events)
        accounts = provisioned(agent, 30)
        seconds = time.perf_counter() - started
    directory = definition.extra["directory"]
    assert isinstance(directory, LdapDirectory)
    counters = directory.counters.snapshot()
    print(f"\n30 mailboxes: {counters}, batches {definition.extra['batcher'].stats}, "
          f"{30 / seconds:.1f} mailboxes/s")
    assert len({a["distinguished_name"] for a in accounts}) == 30
    assert len(users_in(samba, test_ou)) == 30
    # the adapter counts every subtree search of base_dn (look-ups and account-name checks);
    # base reads of one DN are not directory-wide and are counted apart
    assert counters["directory_searches"] <= 5, counters
    assert counters["adds"] == 30


# ---------------------------------------------------------------------- names


def test_account_name_and_cn_collisions_get_numeric_suffixes_within_twenty_characters(
    samba: SambaDC, test_ou: str, broker: AmqpSettings, tmp_path: Path
) -> None:
    alias = f"c{token()}x.collision.with.a.long.alias"
    first, second, third = islice(naming.sam_account_name_candidates(alias[:20]), 3)
    assert (len(first), second[-1], third[-1]) == (20, "2", "3")
    make_user(samba, test_ou, "Holder One", sAMAccountName=first)
    make_user(samba, test_ou, "Holder Two", sAMAccountName=second)
    make_user(samba, test_ou, "Same Name", sAMAccountName=f"s{token()}")  # the CN is taken in the OU
    event = cloud_mailbox(alias, "Same Name")
    with provisioner(samba, test_ou, broker, tmp_path) as (agent, _):
        agent.publisher.publish_events([event])
        [account] = provisioned(agent, 1)
    assert account["sam_account_name"] == third == alias[:19] + "3"
    assert account["distinguished_name"] == f"CN=Same Name (2),{test_ou}"


HOSTILE_NAMES = [
    "x'; Remove-Mailbox -Identity * #",
    'Robert")(cn=*))(|(cn=*',
    'a,b+c=d<e>f#g;h\\"i',
    "李雷",
    "Zoë Ångström",
    "#leading hash and trailing space ",
    "A very long display name that goes well past the sixty-four characters a CN may hold",
]


def test_hostile_and_unicode_names_are_just_strings(
    samba: SambaDC, test_ou: str, broker: AmqpSettings, tmp_path: Path
) -> None:
    t = token()
    events = [cloud_mailbox(f"h{n}.{t}", name) for n, name in enumerate(HOSTILE_NAMES)]
    # "+" is fine in an address but not in a sAMAccountName: the name falls back to the GUID
    events.append(cloud_mailbox("+++", "Only Symbols", local_part=f"plus.{t}"))
    # "*" in an address must not act as a wildcard in the look-up filter
    decoy = make_user(samba, test_ou, "Decoy", mail=f"starXX{t}@{DOMAIN}")
    events.append(cloud_mailbox(f"star*{t}", "Star Alias"))
    with provisioner(samba, test_ou, broker, tmp_path) as (agent, _):
        agent.publisher.publish_events(events)
        seen = agent.spy.collect(lambda s: len(of_type(s, "mailbox.provisioned")) >= len(events))
    accounts = by_mailbox(seen)
    for event in events:
        account = accounts[event.data.exchange_guid]
        assert account["created"] is True
        assert account["distinguished_name"] != decoy
        user = read(samba, account["distinguished_name"])
        assert user["displayName"] == event.data.display_name
        assert user["cn"] == naming.common_name(event.data.display_name, event.data.alias)
        assert len(user["cn"]) <= 64
        assert 1 <= len(user["sAMAccountName"]) <= 20
        assert user["userAccountControl"] == 512
    assert accounts[events[-2].data.exchange_guid]["sam_account_name"].startswith("hb-")
    assert len(users_in(samba, test_ou)) == len(events) + 1


# ---------------------------------------------------------------------- failures


def test_an_unreachable_directory_is_retried_then_dead_lettered_as_transient(
    test_ou: str, samba: SambaDC, broker: AmqpSettings, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    section = ad_section(samba, test_ou, url=f"ldaps://127.0.0.1:{port}")
    with running_provisioner(agent_config(broker, tmp_path, section), broker) as (agent, _):
        agent.publisher.publish_events([cloud_mailbox(f"down.{token()}", "Nobody Home")])
        failure = failed(agent)
        dead = drain_queue(broker, agent.consumer.names.dead_letter)
    assert failure["error_class"] == "transient"
    assert failure["attempts"] == 3  # the first try and both retry tiers of the test config
    assert "unreachable" in failure["reason"]
    assert samba.settings.password() not in failure["reason"]
    assert len(dead) == 1


def test_two_accounts_holding_one_mailboxs_addresses_need_a_human(
    samba: SambaDC, test_ou: str, broker: AmqpSettings, tmp_path: Path
) -> None:
    t = token()
    event = cloud_mailbox(f"twin.{t}", "Twin Person", secondary=[f"twin.other.{t}@{DOMAIN}"])
    one = make_user(samba, test_ou, "Twin One", userPrincipalName=f"twin.{t}@{DOMAIN}")
    two = make_user(samba, test_ou, "Twin Two", proxyAddresses=[f"smtp:twin.other.{t}@{DOMAIN}"])
    with provisioner(samba, test_ou, broker, tmp_path) as (agent, _):
        agent.publisher.publish_events([event])
        failure = failed(agent)
        dead = drain_queue(broker, agent.consumer.names.dead_letter)
    assert failure["error_class"] == "needs-human"
    assert failure["step"] == "provision"
    assert one in failure["reason"] and two in failure["reason"]
    assert failure["remediation"]
    assert len(dead) == 1
    assert len(users_in(samba, test_ou)) == 2  # nothing created


def test_an_account_that_already_has_an_onprem_mailbox_needs_a_human(
    samba: SambaDC, test_ou: str, broker: AmqpSettings, tmp_path: Path
) -> None:
    t = token()
    make_user(samba, test_ou, "Onprem Mailbox", mail=f"onprem.{t}@{DOMAIN}", msExchRecipientTypeDetails=1)
    with provisioner(samba, test_ou, broker, tmp_path) as (agent, _):
        agent.publisher.publish_events([cloud_mailbox(f"onprem.{t}", "Onprem Mailbox")])
        failure = failed(agent)
    assert failure["error_class"] == "needs-human"
    assert "already has a primary mailbox" in failure["reason"]


def directory_check(samba: SambaDC, users_ou: str, **overrides: Any) -> str:
    """What `homebound config check --connect` runs for [active_directory]."""
    from agents.commands.connectivity import CHECKS

    config = HomeboundConfig.model_validate({"active_directory": ad_section(samba, users_ou, **overrides)})
    return CHECKS["active_directory"](config)


def test_config_check_connect_binds_and_finds_the_users_ou(samba: SambaDC, test_ou: str) -> None:
    assert "certificate verified" in directory_check(samba, test_ou)
    assert "NOT verified" in directory_check(samba, test_ou, verify_tls=False, ca_file=None)
    with pytest.raises(PermanentError, match="does not exist"):
        directory_check(samba, f"OU=missing-{token()},{samba.settings.base_dn}")


def test_a_wrong_bind_password_is_permanent_and_never_echoed(samba: SambaDC, test_ou: str) -> None:
    wrong = f"Wrong-{token()}-Pw1!"
    with pytest.raises(PermanentError) as raised:
        directory_check(samba, test_ou, password=wrong)
    assert "invalid credentials" in raised.value.reason
    assert wrong not in str(raised.value) and wrong not in raised.value.remediation


def test_a_certificate_from_an_unknown_ca_is_refused(samba: SambaDC, test_ou: str, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    with pytest.raises(PermanentError) as raised:
        directory_check(samba, test_ou, ca_file=str(other_ca))
    assert "certificate" in raised.value.reason and "ca_file" in raised.value.remediation


def test_a_dropped_or_idle_connection_is_reopened_and_the_lookup_goes_through(
    samba: SambaDC, test_ou: str
) -> None:
    directory = directory_from_config(ActiveDirectorySection.model_validate(ad_section(samba, test_ou)))
    lookup = Lookup(frozenset({f"nobody.{token()}@{DOMAIN}"}))
    try:
        assert directory.find_users([lookup]) == []
        directory._local.connection.socket.shutdown(socket.SHUT_RDWR)  # the DC went away mid-life
        assert directory.find_users([lookup]) == []
        assert directory.counters.snapshot()["connections_opened"] == 2
        directory._local.last_used -= 3600  # idle for an hour: reopened before use
        assert directory.find_users([lookup]) == []
        assert directory.counters.snapshot()["connections_opened"] == 3
    finally:
        directory.close()


# ---------------------------------------------------------------------- pure parts, no I/O


@pytest.mark.parametrize(("alias", "expected"), [
    ("jsmith", "jsmith"),
    ("Zoë.Ångström", "Zoe.Angstrom"),
    ("straße", "strasse"),
    ("a/b\\c[d]e:f;g|h=i,j+k*l?m<n>o@p\"q", "abcdefghijklmnopq"),
    ("..dots..around..", "dots.around"),
    ("averyveryverylongaliasname", "averyveryverylongali"),
    ("nineteen.characters.x", "nineteen.characters"),  # cut at 20, then no trailing dot
    ("tab\tand\x00nul", "tabandnul"),
])
def test_account_names_are_derived_from_the_alias_safely(alias: str, expected: str) -> None:
    assert naming.sam_account_name_base(alias, uuid.uuid4()) == expected


@pytest.mark.parametrize("alias", ["+++", "李雷", "...", "$#!"])
def test_an_alias_with_nothing_usable_falls_back_to_the_exchange_guid(alias: str) -> None:
    guid = uuid.UUID("0123456789abcdef0123456789abcdef")
    assert naming.sam_account_name_base(alias, guid) == "hb-0123456789ab"


def test_account_name_candidates_stay_within_twenty_characters() -> None:
    candidates = list(naming.sam_account_name_candidates("abcdefghijklmnopqrst"))
    assert candidates[:3] == ["abcdefghijklmnopqrst", "abcdefghijklmnopqrs2", "abcdefghijklmnopqrs3"]
    assert candidates[9] == "abcdefghijklmnopqr10"
    assert all(len(c) <= 20 for c in candidates)
    assert len(set(c.lower() for c in candidates)) == len(candidates)


def test_common_names_are_tidied_and_cut_to_sixty_four_characters() -> None:
    assert naming.common_name("  Anna\tSmith\x07 ", "anna") == "Anna Smith"
    assert naming.common_name("   ", "fallback.alias") == "fallback.alias"
    long = naming.common_name("x" * 100, "a", attempt=12)
    assert long == "x" * 59 + " (12)" and len(long) == 64
    assert len(naming.common_name("😀" * 40, "a").encode("utf-16-le")) // 2 <= 64
    assert naming.common_name('a,b+c=d<e>f#g;h\\"i', "a") == 'a,b+c=d<e>f#g;h\\"i'


@pytest.mark.parametrize(("display", "expected"), [
    ("Zoë Ångström", ("Zoë", "Ångström")),
    ("Smith, Anna", ("Anna", "Smith")),
    ("Jean-Luc O'Neill", ("Jean-Luc", "O'Neill")),
    ("Mary Ann van Dyke", ("Mary", "Ann van Dyke")),
    ("李雷", (None, None)),
    ("Sales Team 2", (None, None)),
    ("x'; Remove-Mailbox -Identity * #", (None, None)),
    ('Robert")(cn=*))(|(cn=*', (None, None)),
])
def test_given_name_and_surname_are_set_only_when_the_display_name_is_clearly_a_persons(
    display: str, expected: tuple[str | None, str | None]
) -> None:
    assert naming.person_name_parts(display) == expected


def test_generated_passwords_meet_ad_complexity_and_avoid_the_names() -> None:
    passwords = {naming.generate_password(24, avoid={"abc"}) for _ in range(300)}
    assert len(passwords) == 300
    for password in passwords:
        assert len(password) == 24
        assert any(c.isupper() for c in password) and any(c.islower() for c in password)
        assert any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)
        assert "abc" not in password.casefold() and '"' not in password and "\\" not in password
    assert {"anna", "smith", "anna smith", "asmith"} <= naming.complexity_tokens("asmith", "Anna Smith")


def test_lookup_filters_escape_every_value() -> None:
    hostile = 'a*b)(cn=*))(|(x=\\@fabrikam.example'
    built = lookup_filter([Lookup(frozenset({hostile}), ("ad*min)",))])
    assert built is not None
    assert "a\\2ab\\29\\28cn=\\2a\\29\\29\\28|\\28x=\\5c@fabrikam.example" in built
    assert "(sAMAccountName=ad\\2amin\\29)" in built
    assert built.count("(") == built.count(")")
    assert lookup_filter([]) is None


def test_concurrent_lookups_share_one_search() -> None:
    searches: list[int] = []

    def search(questions: Sequence[int]) -> list[int]:
        searches.append(len(questions))
        time.sleep(0.01)
        return [q * 10 for q in questions]

    batcher: LookupBatcher[int, list[int]] = LookupBatcher(search, max_batch=50, wait_seconds=0.05)
    answers: dict[int, list[int]] = {}
    threads = [threading.Thread(target=lambda n=n: answers.__setitem__(n, batcher.ask(n))) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(searches) == 20 and len(searches) <= 2
    assert all(n * 10 in answers[n] for n in range(20))


def test_a_failed_batch_search_fails_every_waiting_caller_as_transient() -> None:
    def search(questions: Sequence[int]) -> list[int]:
        raise ConnectionResetError("gone")

    batcher: LookupBatcher[int, list[int]] = LookupBatcher(search, max_batch=3, wait_seconds=0.05)
    errors: list[BaseException] = []

    def ask(n: int) -> None:
        try:
            batcher.ask(n)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 3 and all(isinstance(e, TransientError) for e in errors)
    assert len({id(e) for e in errors}) == 3
