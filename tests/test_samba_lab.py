from __future__ import annotations

import uuid

import ldap3
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from lab.samba import SambaDC
from tests.conftest import ldap_entries


def test_a_user_with_exchange_attributes_round_trips_over_verified_ldaps(
    samba: SambaDC, test_ou: str
) -> None:
    display = "x'; Remove-Mailbox -Identity * #, \"evil\""
    dn = f"CN={escape_rdn(display)},{test_ou}"
    mailbox_guid = uuid.uuid4()
    with samba.connect() as conn:
        conn.add(dn, ["top", "person", "organizationalPerson", "user"], {
            "sAMAccountName": f"t{uuid.uuid4().hex[:10]}", "displayName": display,
            "userPrincipalName": "evil@fabrikam.example",
        })
        conn.modify(dn, {
            "unicodePwd": [(ldap3.MODIFY_REPLACE, ['"Aa1-secret-pw!"'.encode("utf-16-le")])],
            "userAccountControl": [(ldap3.MODIFY_REPLACE, [512])],
        })
        conn.modify(dn, {"msExchMailboxGuid": [(ldap3.MODIFY_REPLACE, [mailbox_guid.bytes_le])]})
        conn.search(test_ou, f"(displayName={escape_filter_chars(display)})",
                    attributes=["objectGUID", "msExchMailboxGuid", "displayName", "userAccountControl"])
        [entry] = ldap_entries(conn)
    attributes = entry["attributes"]
    assert attributes["displayName"] == display
    assert uuid.UUID(bytes_le=attributes["msExchMailboxGuid"]) == mailbox_guid
    assert uuid.UUID(attributes["objectGUID"])
    assert attributes["userAccountControl"] == 512
