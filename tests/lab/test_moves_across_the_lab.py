"""Both stand-ins and the real Samba together: a move checks the on-prem object as Exchange does.

The Exchange Online stand-in asks the on-prem stand-in's MRSProxy to validate
the target, and the on-prem stand-in reads the real directory: a mail user
without the X500 proxy fails the move with Exchange's message; once the proxy
is there, a new move completes and the mail user becomes a mailbox.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import ldap3
import pytest

from agents.runtime.config import load_config
from agents.shared.exchange_shell import ExchangeShell
from agents.shared.exo_client import ExchangeOnlineClient
from contracts.onprem import MailEnableItem, MailEnableRequest, OrgPrepareRequest
from events.amqp import AmqpSettings
from lab.samba import SambaDC
from tests.conftest import ldap_entries
from tests.e2e.world import World, world

pytestmark = pytest.mark.lab


def _wait_status(
    client: ExchangeOnlineClient, address: str, wanted: set[str], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        [row] = client.invoke("Get-MigrationUserStatistics", {"Identity": address})
        if row["Status"] in wanted:
            return row
        assert time.monotonic() < deadline, f"{address} stayed {row['Status']}: {row.get('Error')}"
        time.sleep(0.3)


def _batch(client: ExchangeOnlineClient, name: str, w: World, address: str) -> None:
    csv = base64.b64encode(f"EmailAddress\r\n{address}\r\n".encode()).decode()
    client.invoke(
        "New-MigrationBatch",
        {
            "Name": name,
            "TargetEndpoint": "lab-endpoint",
            "TargetDeliveryDomain": w.domain,
            "TargetDatabases": ["DB01"],
            "CSVData": csv,
            "AutoStart": True,
            "AutoComplete": True,
        },
    )


def test_a_move_to_a_mail_user_without_the_x500_proxy_fails_and_succeeds_once_it_is_added(
    samba: SambaDC,
    test_ou: str,
    broker: AmqpSettings,
    tmp_path: Any,
) -> None:
    rows = [{"DisplayName": "Ann Example", "Alias": "ann"}]
    with world(tmp_path, samba, test_ou, broker, seed_rows=rows) as w:
        config = load_config(w.config_file)
        assert config.exchange_online is not None and config.onprem_exchange is not None
        cloud = ExchangeOnlineClient(config.exchange_online)
        shell = ExchangeShell.from_section(config.onprem_exchange)
        try:
            [mailbox] = cloud.invoke("Get-Mailbox", {"Identity": f"ann@{w.domain}"})
            dn = f"CN=Ann Example,{test_ou}"
            with samba.connect() as conn:
                conn.add(
                    dn,
                    ["top", "person", "organizationalPerson", "user"],
                    {"sAMAccountName": f"ann{uuid.uuid4().hex[:6]}", "userPrincipalName": f"ann@{w.domain}"},
                )
                conn.search(dn, "(objectClass=user)", ldap3.BASE, attributes=["objectGUID"])
                object_guid = uuid.UUID(ldap_entries(conn)[0]["attributes"]["objectGUID"])
            shell.run(
                OrgPrepareRequest(
                    enable_mrsproxy=["EX01\\EWS (Default Web Site)", "EX02\\EWS (Default Web Site)"]
                )
            )
            smtp = [a for a in mailbox["EmailAddresses"] if a.lower().startswith("smtp:")]
            item = MailEnableItem(
                identity=object_guid,
                alias="ann",
                display_name="Ann Example",
                external_email_address=f"ann@{w.tenant}.mail.onmicrosoft.com",
                primary_smtp_address=f"ann@{w.domain}",
                exchange_guid=uuid.UUID(mailbox["ExchangeGuid"]),
                email_addresses=[f"SMTP:ann@{w.domain}", *(a for a in smtp if a != f"SMTP:ann@{w.domain}")],
            )
            [result] = shell.run(MailEnableRequest(recipients=[item])).results  # no X500 proxy
            assert result.ok, result.error
            cloud.invoke(
                "New-MigrationEndpoint",
                {
                    "Name": "lab-endpoint",
                    "ExchangeRemoteMove": True,
                    "RemoteServer": w.gateway_host,
                    "Credentials": {
                        "UserName": config.onprem_exchange.username,
                        "Password": config.onprem_exchange.password.get_secret_value()
                        if config.onprem_exchange.password
                        else "",
                    },
                },
            )

            _batch(cloud, "without-x500", w, f"ann@{w.domain}")
            failed = _wait_status(cloud, f"ann@{w.domain}", {"Failed", "Completed"})
            assert failed["Status"] == "Failed"
            assert "doesn't have an X500 proxy matching" in failed["Error"]
            assert mailbox["LegacyExchangeDN"] in failed["Error"]

            # the fix: the X500 proxy on the on-prem object, through the same template
            fixed = item.model_copy(
                update={"email_addresses": [*item.email_addresses, f"X500:{mailbox['LegacyExchangeDN']}"]}
            )
            [again] = shell.run(MailEnableRequest(recipients=[fixed])).results
            assert again.ok and again.changed
            cloud.invoke("Remove-MigrationBatch", {"Identity": "without-x500", "Confirm": False})
            _batch(cloud, "with-x500", w, f"ann@{w.domain}")
            done = _wait_status(cloud, f"ann@{w.domain}", {"Failed", "Completed"})
            assert done["Status"] == "Completed", done.get("Error")
            with samba.connect() as conn:
                conn.search(dn, "(objectClass=user)", ldap3.BASE, attributes=["msExchRecipientTypeDetails"])
                assert ldap_entries(conn)[0]["attributes"]["msExchRecipientTypeDetails"] == 1  # a mailbox now
        finally:
            shell.close()
            cloud.close()
