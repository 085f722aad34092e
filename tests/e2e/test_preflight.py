"""`homebound migrate --dry-run` against the real systems: the plan, and not one change."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.runtime.config import load_config
from agents.shared.exo_client import ExchangeOnlineClient
from events.amqp import AmqpSettings
from lab.samba import SambaDC
from tests.conftest import ldap_entries
from tests.e2e.world import World, world

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def tenant_state(w: World) -> dict[str, Any]:
    config = load_config(w.config_file)
    assert config.exchange_online is not None
    client = ExchangeOnlineClient(config.exchange_online)
    try:
        return {
            "domains": sorted(
                (d["DomainName"], d["DomainType"]) for d in client.invoke("Get-AcceptedDomain")
            ),
            "connectors": len(client.invoke("Get-OutboundConnector")),
            "endpoints": len(client.invoke("Get-MigrationEndpoint")),
        }
    finally:
        client.close()


def onprem_operations(w: World) -> list[str]:
    """The shell operations the on-prem stand-in ran (its own log of every script)."""
    onprem = load_config(w.config_file).onprem_exchange
    assert onprem is not None and onprem.ca_file is not None
    with httpx.Client(verify=ssl.create_default_context(cafile=str(onprem.ca_file))) as http:
        entries = http.get(f"https://127.0.0.1:{w.onprem.https_port}/lab/scripts").json()
    return [str(entry["op"]) for entry in entries]


def test_the_dry_run_reports_every_check_and_the_plan_and_changes_nothing(
    samba: SambaDC,
    test_ou: str,
    broker: AmqpSettings,
    tmp_path: Path,
) -> None:
    rows = [
        {"DisplayName": "Ann Example", "Alias": "ann"},
        {"DisplayName": "Bob Example", "Alias": "bob"},
        {"DisplayName": "x'; Remove-Mailbox -Identity * #", "Alias": "hostile"},
    ]
    with world(tmp_path, samba, test_ou, broker, seed_rows=rows) as w:
        before = tenant_state(w)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "agents",
                "--config",
                str(w.config_file),
                "migrate",
                "--domain",
                w.domain,
                "--all",
                "--dry-run",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["ok"] is True
        numbers = {check["number"] for check in report["checks"]}
        assert {1, 2, 3, 4, 5, 6, 7, 8} <= numbers  # every pre-flight check of EXCHANGE.md
        assert sorted(m["address"] for m in report["mailboxes"]) == sorted(
            f"{r['Alias']}@{w.domain}" for r in rows
        )
        assert all(m["account"].startswith("create in") for m in report["mailboxes"])
        assert any("InternalRelay" in change for change in report["changes"]["Exchange Online"])
        assert any("MRSProxy" in change for change in report["changes"]["on-prem Exchange"])
        assert any("SPF" in change for change in report["changes"]["DNS"])

        # nothing was changed anywhere
        assert tenant_state(w) == before
        operations = onprem_operations(w)
        assert "org-inspect" in operations
        assert set(operations) <= {"org-inspect", "recipient-read"}  # reads only
        with samba.connect() as conn:
            conn.search(test_ou, "(objectClass=user)")
            assert ldap_entries(conn) == []
        mx = w.bind.query(w.domain, "MX")
        assert "mail.protection.outlook.com" in mx.to_text()
