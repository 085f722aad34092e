"""All five agents as separate processes, the real broker, the lab: a wave of 100 mailboxes.

Outcomes are checked in the systems themselves (Samba, the Exchange Online
stand-in's admin API, BIND), not in Homebound's own report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import ldap3
import pytest

from agents.dns_cutover.spf import parse as parse_spf
from agents.operator.fleet import AgentFleet
from agents.operator.wave_view import WavesView, WaveView
from agents.runtime.config import load_config
from agents.shared.exo_client import ExchangeOnlineClient
from events.admin import BrokerAdmin
from events.amqp import AmqpSettings
from events.audit import tail_audit
from lab.samba import SambaDC
from tests.conftest import ldap_entries
from tests.e2e.world import World, world

pytestmark = [pytest.mark.e2e, pytest.mark.lab]

REPO = Path(__file__).resolve().parents[2]
HOSTILE = [
    "x'; Remove-Mailbox -Identity * #",
    "$(Invoke-Expression 'calc')",
    'Robert")(cn=*))(|(cn=*',
    'a,b+c=d<e>f#g;h\\"i',
    "Back`tick `$env:USERNAME",
]
UNICODE = ["Zoë Ångström", "李雷", "Björk Guðmundsdóttir"]
BROKEN = "conflict.person"  # a stale directory object holds this mailbox's X500 address


def seed_rows() -> list[dict[str, str]]:
    rows = [{"DisplayName": name, "Alias": f"hostile{i}"} for i, name in enumerate(HOSTILE)]
    rows += [{"DisplayName": name, "Alias": f"unicode{i}"} for i, name in enumerate(UNICODE)]
    rows.append({"DisplayName": "Sales Team", "Alias": "sales", "RecipientTypeDetails": "SharedMailbox"})
    rows.append({"DisplayName": "Conflict Person", "Alias": BROKEN})
    rows.append({"DisplayName": "Seán O'Brien", "Alias": "o'brien"})
    while len(rows) < 100:
        n = len(rows)
        rows.append(
            {
                "DisplayName": f"User {n:03d}",
                "Alias": f"user{n:03d}",
                "HasArchive": "true" if n % 6 == 0 else "false",
                "SizeMB": str(5 + (n * 37) % 900),
            }
        )
    return rows


def homebound(world_: World, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents", "--config", str(world_.config_file), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def watch(broker: AmqpSettings, wave_id: str, until: Callable[[WaveView], bool], timeout: float) -> WaveView:
    """Fold the audit stream until *until(view)* holds (the stream is read, not the agents' logs)."""
    deadline = time.monotonic() + timeout
    while True:
        views = WavesView(wave_id)
        tail_audit(broker, lambda doc, _o, into=views: _fold(into, doc), offset="first")
        view = views.waves.get(wave_id)
        if view is not None and until(view):
            return view
        if time.monotonic() > deadline:
            state = dict(view.counts()) if view else {}
            raise AssertionError(f"wave {wave_id} did not get there within {timeout:.0f} s: {state}")
        time.sleep(2)


def answers_to(
    broker: AmqpSettings, request_id: str, wanted: set[str], timeout: float = 120
) -> dict[str, Any]:
    """The events each agent published in answer to one request (same correlation id)."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, Any] = {}

        def keep(doc: dict[str, Any], _offset: int, found: dict[str, Any] = found) -> None:
            if doc.get("correlation_id") == request_id and doc.get("type") in wanted:
                found[doc["type"]] = doc

        tail_audit(broker, keep, offset="first")
        if set(found) == wanted:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"only {sorted(found)} answered request {request_id}")
        time.sleep(1)


def _fold(views: WavesView, document: dict[str, Any]) -> None:
    views.apply_document(document)


def cloud_mailboxes(world_: World) -> dict[str, dict[str, Any]]:
    config = load_config(world_.config_file)
    assert config.exchange_online is not None
    client = ExchangeOnlineClient(config.exchange_online)
    try:
        rows = client.invoke("Get-Mailbox", {"ResultSize": "Unlimited"})
    finally:
        client.close()
    return {row["Alias"]: row for row in rows}


def directory_snapshot(samba: SambaDC, ou: str) -> dict[str, tuple[Any, ...]]:
    with samba.connect() as conn:
        conn.search(
            ou,
            "(objectClass=user)",
            attributes=["uSNChanged", "proxyAddresses", "msExchMailboxGuid"],
            paged_size=500,
        )
        return {e["dn"]: (e["attributes"]["uSNChanged"],) for e in ldap_entries(conn)}


def mx_and_spf(world_: World) -> tuple[list[tuple[int, str, int]], list[str]]:
    settings = world_.bind.settings

    def ask(rdtype: dns.rdatatype.RdataType) -> Any:
        return dns.query.tcp(
            dns.message.make_query(world_.domain, rdtype), settings.server, port=settings.port, timeout=5
        ).answer

    mx = [
        (r.preference, str(r.exchange).rstrip("."), rrset.ttl)
        for rrset in ask(dns.rdatatype.MX)
        for r in rrset
    ]
    txt = [b"".join(r.strings).decode() for rrset in ask(dns.rdatatype.TXT) for r in rrset]
    return sorted(mx), [t for t in txt if t.lower().startswith("v=spf1")]


def test_a_wave_of_a_hundred_mailboxes_lands_on_premises_and_a_fixed_failure_is_replayed(
    samba: SambaDC,
    test_ou: str,
    broker: AmqpSettings,
    tmp_path: Path,
) -> None:
    with world(tmp_path, samba, test_ou, broker, seed_rows=seed_rows()) as w:
        mailboxes = cloud_mailboxes(w)
        assert len(mailboxes) == 100
        # A leftover object from an earlier attempt holds the X500 address of one mailbox.
        decoy = f"CN=Old Import {uuid.uuid4().hex[:6]},{test_ou}"
        stale_x500 = "X500:" + mailboxes[BROKEN]["LegacyExchangeDN"]
        with samba.connect() as conn:
            conn.add(
                decoy,
                ["top", "person", "organizationalPerson", "user"],
                {"sAMAccountName": f"old{uuid.uuid4().hex[:8]}", "proxyAddresses": [stale_x500]},
            )

        with BrokerAdmin() as admin:
            fleet = AgentFleet(w.config_file, tmp_path / "logs", broker.vhost, admin)
            fleet.start(timeout=90)
            try:
                started = homebound(w, "migrate", "--domain", w.domain, "--all")
                assert started.returncode == 0, started.stderr
                wave_id = started.stdout.strip().splitlines()[-1]

                # 99 complete; the conflicting one is dead-lettered with its classified reason
                view = watch(broker, wave_id, lambda v: bool(v.migrated), timeout=420)
                assert view.migrated == {"completed": 99, "failed": 1, "partial": True}
                letters = [
                    json.loads(line) for line in homebound(w, "dlq", "list", "--json").stdout.splitlines()
                ]
                [letter] = [x for x in letters if x["address"] == f"{BROKEN}@{w.domain}"]
                assert letter["consumer"] == "exchange-configurator"
                assert letter["error_class"] == "permanent"
                assert "is already being used by the proxy addresses" in letter["reason"]
                mx_partial, _ = mx_and_spf(w)
                assert all(
                    host != w.gateway_host for _, host, _ in mx_partial
                )  # no cutover of a partial wave

                # the operator removes the stale address, then replays the mailbox
                with samba.connect() as conn:
                    conn.modify(decoy, {"proxyAddresses": [(ldap3.MODIFY_DELETE, [stale_x500])]})
                replayed = homebound(w, "dlq", "replay", "--mailbox", f"{BROKEN}@{w.domain}")
                assert replayed.returncode == 0, replayed.stderr
                view = watch(
                    broker, wave_id, lambda v: v.phase is not None and v.phase.value == "done", timeout=300
                )
                assert view.counts()["completed"] == 100

                # --- the systems themselves ---
                check_directory(w, mailboxes)
                check_exchange_online(w, mailboxes)
                mx, spf = mx_and_spf(w)
                assert mx == [(0, w.gateway_host, 3600)]
                [record] = spf
                parsed = parse_spf(record)
                assert "ip4:192.0.2.25" in record and "include:spf.protection.outlook.com" in record
                assert parsed.lookup_count <= 10

                # --- running the same wave again changes nothing ---
                before = (
                    directory_snapshot(samba, test_ou),
                    mx_and_spf(w),
                    sorted((u["Identity"], u["Status"]) for u in exo_users(w)),
                )
                again = homebound(w, "migrate", "--domain", w.domain, "--all", "--wave-id", wave_id, "--json")
                assert again.returncode == 0, again.stderr
                answers = answers_to(
                    broker,
                    json.loads(again.stdout)["event_id"],
                    {"wave.cloud_ready", "wave.onprem_ready", "wave.dns_prepared", "wave.exported"},
                )
                assert [answers[t]["data"]["changes"] for t in sorted(answers) if t != "wave.exported"] == [
                    [],
                    [],
                    [],
                ]
                assert answers["wave.exported"]["data"]["count"] == 0  # every mailbox now lives on-prem
                after = (
                    directory_snapshot(samba, test_ou),
                    mx_and_spf(w),
                    sorted((u["Identity"], u["Status"]) for u in exo_users(w)),
                )
                assert after == before
            finally:
                codes = fleet.stop()
        assert all(code == 0 for code in codes.values()), codes


def exo_users(w: World) -> list[dict[str, Any]]:
    config = load_config(w.config_file)
    assert config.exchange_online is not None
    client = ExchangeOnlineClient(config.exchange_online)
    try:
        return client.invoke("Get-MigrationUser", {"ResultSize": "Unlimited"})
    finally:
        client.close()


def check_directory(w: World, mailboxes: dict[str, dict[str, Any]]) -> None:
    """Every user exists once, with the cloud ExchangeGuid, the X500 and every SMTP proxy."""
    with w.samba.connect() as conn:
        for alias, row in mailboxes.items():
            guid = uuid.UUID(row["ExchangeGuid"])
            conn.search(
                w.samba.settings.base_dn,
                f"(msExchMailboxGuid={ldap3.utils.conv.escape_bytes(guid.bytes_le)})",
                attributes=["proxyAddresses", "displayName", "msExchRecipientTypeDetails"],
            )
            entries = ldap_entries(conn)
            assert len(entries) == 1, f"{alias}: {len(entries)} directory objects carry its ExchangeGuid"
            attributes = entries[0]["attributes"]
            proxies = {p.lower() for p in attributes["proxyAddresses"]}
            assert f"x500:{row['LegacyExchangeDN']}".lower() in proxies, alias
            for address in row["EmailAddresses"]:
                if address.lower().startswith("smtp:") and not address.lower().endswith(".onmicrosoft.com"):
                    assert address.lower() in proxies, (alias, address)
            assert attributes["displayName"] == row["DisplayName"]


def check_exchange_online(w: World, mailboxes: dict[str, dict[str, Any]]) -> None:
    users = {u["Identity"].lower(): u["Status"] for u in exo_users(w)}
    for row in mailboxes.values():
        assert users.get(row["PrimarySmtpAddress"].lower()) == "Completed", row["PrimarySmtpAddress"]
