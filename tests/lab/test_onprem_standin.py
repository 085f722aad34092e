"""The on-prem Exchange stand-in, driven by the real pywinrm and the product's real templates.

Every script here is a file from agents/exchange_configurator/scripts, sent as
the exchange-configurator sends it; the stand-in runs with `templates_dir`
set, so a script that is not byte-identical to a template is refused. AD
writes land in the shared test Samba and are read back with ldap3.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ldap3
import pytest
import winrm
from winrm.exceptions import InvalidCredentialsError, WSManFaultError

from contracts.onprem import (
    AcceptedDomainChange,
    DomainType,
    MailEnableItem,
    MailEnableMode,
    MailEnableRequest,
    MailEnableResponse,
    OrgInspectRequest,
    OrgInspectResponse,
    OrgPrepareRequest,
    OrgPrepareResponse,
    RecipientReadRequest,
    RecipientReadResponse,
    SendConnectorChange,
    parse_op_header,
)
from lab.certs import LabCertificates, ensure_certificates
from lab.mrsproxy_protocol import MESSAGES, PATH
from lab.onprem import OnpremConfig, OnpremStandIn
from lab.samba import SambaDC
from tests.lab.onprem_client import (
    SCRIPTS,
    Shell,
    create_users,
    encoded_command,
    read_user,
    request_bytes,
    template,
    text_values,
)

USER = "LAB\\hbadmin"
TENANT_ROUTING = "fabrikam.mail.onmicrosoft.com"
DOMAIN = "fabrikam.example"
OPERATIONS = ("org-inspect", "org-prepare", "mail-enable", "recipient-read")


@pytest.fixture(scope="module")
def lab_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabCertificates, Path, str]:
    base = tmp_path_factory.mktemp("onprem")
    certs = ensure_certificates(base / "tls")
    password = f"Pw-{secrets.token_urlsafe(12)}"
    users = base / "users"
    users.write_text(f"LAB:hbadmin:{password}\n")
    users.chmod(0o600)
    return certs, users, password


@pytest.fixture
def make_stand_in(samba: SambaDC, lab_files: tuple[LabCertificates, Path, str],
                  tmp_path: Path) -> Iterator[Callable[..., OnpremStandIn]]:
    """A fresh stand-in (own state_dir, free ports) per call; all stopped after the test."""
    certs, users, _ = lab_files
    started: list[OnpremStandIn] = []

    def make(**overrides: Any) -> OnpremStandIn:
        settings = samba.settings
        values: dict[str, Any] = {
            "http_port": 0, "https_port": 0, "cert_file": certs.cert_file, "key_file": certs.key_file,
            "users_file": users, "state_dir": tmp_path / f"state{len(started)}",
            "templates_dir": SCRIPTS, "ad_ldaps_url": settings.ldaps_url,
            "ad_bind_user": settings.bind_user, "ad_password_file": settings.password_file,
            "ad_ca_file": settings.ca_file, "ad_base_dn": settings.base_dn,
        }
        stand_in = OnpremStandIn(OnpremConfig(**{**values, **overrides}))
        stand_in.start()
        started.append(stand_in)
        return stand_in

    yield make
    for stand_in in started:
        stand_in.stop()


@pytest.fixture
def stand_in(make_stand_in: Callable[..., OnpremStandIn]) -> OnpremStandIn:
    return make_stand_in()


@pytest.fixture
def password(lab_files: tuple[LabCertificates, Path, str]) -> str:
    return lab_files[2]


@pytest.fixture
def ca_file(lab_files: tuple[LabCertificates, Path, str]) -> Path:
    return lab_files[0].ca_file


def ntlm_http(stand_in: OnpremStandIn, password: str, **kwargs: Any) -> winrm.Protocol:
    # plain HTTP: no certificate, and no CA trust taken from the environment either
    return winrm.Protocol(f"http://127.0.0.1:{stand_in.http_port}/wsman", transport="ntlm",
                          username=USER, password=password, ca_trust_path=None, **kwargs)


def https(stand_in: OnpremStandIn, password: str, ca: Path, transport: str = "ssl",
          **kwargs: Any) -> winrm.Protocol:
    return winrm.Protocol(f"https://127.0.0.1:{stand_in.https_port}/wsman", transport=transport,  # type: ignore[arg-type]
                          username=USER, password=password, server_cert_validation="validate",
                          ca_trust_path=str(ca), **kwargs)


@pytest.fixture
def shell(stand_in: OnpremStandIn, password: str) -> Iterator[Shell]:
    opened = Shell(ntlm_http(stand_in, password))
    yield opened
    opened.close()


def item(guid: uuid.UUID, alias: str, *, archive: uuid.UUID | None = None, x500: bool = True,
         display: str | None = None, extra: list[str] | None = None) -> MailEnableItem:
    addresses = [f"SMTP:{alias}@{DOMAIN}", f"smtp:{alias}@{TENANT_ROUTING}",
                 f"smtp:{alias}@fabrikam.onmicrosoft.com", *(extra or [])]
    if x500:
        addresses.append(f"X500:/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
                         f"/cn=Recipients/cn={uuid.uuid4().hex}-{alias}")
    return MailEnableItem(
        identity=guid, alias=alias, display_name=display or f"Display {alias}",
        external_email_address=f"{alias}@{TENANT_ROUTING}", primary_smtp_address=f"{alias}@{DOMAIN}",
        exchange_guid=uuid.uuid4(), archive_guid=archive, email_addresses=addresses,
    )


def unique_alias(prefix: str = "a") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def tls_client(ca: Path) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), trust_env=False, timeout=30)


# ---------------------------------------------------------------------------------------- WinRM


def test_ntlm_with_sealing_runs_several_commands_in_one_shell(
    stand_in: OnpremStandIn, password: str, capsys: pytest.CaptureFixture[str],
) -> None:
    shell = Shell(ntlm_http(stand_in, password))
    try:
        assert shell.protocol.transport.encryption is not None  # every body after the handshake is sealed
        first = shell.operation(OrgInspectRequest(), OrgInspectResponse)
        started = time.perf_counter()
        rounds = 10
        for _ in range(rounds):
            again = shell.operation(OrgInspectRequest(), OrgInspectResponse)
        per_command = (time.perf_counter() - started) / rounds
        missing = shell.operation(RecipientReadRequest(identities=[uuid.uuid4()]), RecipientReadResponse)
    finally:
        shell.close()
    assert first == again
    assert [d.name for d in first.mailbox_databases] == ["DB01", "DB02", "DB03"]
    assert [d.mounted for d in first.mailbox_databases] == [True, True, False]
    assert [v.identity for v in first.ews_virtual_directories] == [
        "EX01\\EWS (Default Web Site)", "EX02\\EWS (Default Web Site)"]
    assert not any(v.mrsproxy_enabled for v in first.ews_virtual_directories)
    assert first.recipient_validation_enabled is False
    assert missing.results[0].found is False
    with capsys.disabled():
        print(f"\n[measure] one command in an open NTLM-sealed shell: {per_command * 1000:.1f} ms")


def test_plain_soap_and_basic_are_refused_over_http(stand_in: OnpremStandIn, password: str) -> None:
    with pytest.raises(InvalidCredentialsError):
        ntlm_http(stand_in, password, message_encryption="never").open_shell()
    with pytest.raises(InvalidCredentialsError):
        winrm.Protocol(f"http://127.0.0.1:{stand_in.http_port}/wsman", transport="basic",
                       username=USER, password=password, ca_trust_path=None).open_shell()


def test_https_verifies_the_certificate_and_accepts_basic_and_ntlm(
    stand_in: OnpremStandIn, password: str, ca_file: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the machine's REQUESTS_CA_BUNDLE must play no part: the lab CA is passed explicitly
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    for transport in ("ssl", "ntlm"):  # Basic; NTLM with channel binding, no sealing under TLS
        shell = Shell(https(stand_in, password, ca_file, transport))
        try:
            assert shell.operation(OrgInspectRequest(), OrgInspectResponse).exchange_version
        finally:
            shell.close()
    system_bundle = "/etc/ssl/certs/ca-certificates.crt"
    if Path(system_bundle).exists():
        with pytest.raises(Exception, match=r"(?i)certificate verify failed"):
            https(stand_in, password, Path(system_bundle)).open_shell()


def test_a_wrong_password_raises_invalid_credentials(
    stand_in: OnpremStandIn, ca_file: Path,
) -> None:
    with pytest.raises(InvalidCredentialsError):
        ntlm_http(stand_in, "not-the-password").open_shell()
    with pytest.raises(InvalidCredentialsError):
        https(stand_in, "not-the-password", ca_file).open_shell()


def test_unknown_scripts_and_other_commands_fail_loudly_as_powershell_does(
    stand_in: OnpremStandIn, password: str, shell: Shell,
) -> None:
    session = winrm.Session(f"http://127.0.0.1:{stand_in.http_port}/wsman", auth=(USER, password),
                            transport="ntlm", ca_trust_path=None)
    result = session.run_ps("Remove-Mailbox -Identity * -Confirm:$false")
    assert result.status_code == 1
    assert result.std_err.startswith(b"The term 'Remove-Mailbox' is not recognized as the name of a cmdlet")
    # run_ps sends `powershell -encodedcommand` and never writes stdin: a template then sees an
    # empty stdin, which ConvertFrom-Json refuses
    result = session.run_ps(template("org-inspect"))
    assert result.status_code == 1 and b"empty string" in result.std_err

    outcome = shell.run("ipconfig /all")
    assert outcome.exit_code == 1 and outcome.stderr.startswith(b"#< CLIXML\r\n<Objs ")
    assert b"The term 'ipconfig' is not recognized" in outcome.stderr

    for script in ("# homebound-op: delete-everything/1\nRemove-Mailbox -Identity *\n",
                   template("mail-enable").replace("mail-enable/1", "mail-enable/2", 1),
                   template("org-inspect") + "\nRemove-Mailbox -Identity *\n"):
        outcome = shell.run_script(script, b"{}")
        assert outcome.exit_code == 1, script[:60]
        assert outcome.stderr.startswith(b"#< CLIXML\r\n")
        assert outcome.stdout == b""
    assert b"PSSecurityException" in outcome.stderr  # the altered template (templates_dir is set)

    outcome = shell.run_script(template("recipient-read"), b"{not json")
    assert outcome.exit_code == 1 and b"Invalid JSON primitive" in outcome.stderr
    outcome = shell.run_script(template("recipient-read"), b'{"identities": ["not-a-guid"]}')
    assert outcome.exit_code == 1 and b"ParameterBindingException" in outcome.stderr
    assert b"not-a-guid" not in outcome.stderr  # request data is never echoed


def test_the_command_line_limit_is_cmd_exes(shell: Shell) -> None:
    script = "# homebound-op: org-inspect/1\n" + "#" * 3100 + "\n"
    assert len(encoded_command(script)) > 8191
    outcome = shell.run_script(script, b"{}")
    assert outcome.exit_code == 1 and outcome.stdout == b""
    assert outcome.stderr == b"The command line is too long.\r\n"


@pytest.mark.parametrize("operation", OPERATIONS)
def test_each_template_fits_on_a_command_line(operation: str) -> None:
    raw = (SCRIPTS / f"{operation}.ps1").read_bytes()
    script = raw.decode("ascii")  # ASCII only, so every reader sends the same bytes
    assert b"\r" not in raw and script.endswith("\n")
    assert parse_op_header(script) == (operation, 1)
    assert len(script) < 2900, f"{operation}.ps1 has {len(script)} characters"
    for prefix in ("powershell -encodedcommand", "powershell -NoProfile -NonInteractive -EncodedCommand"):
        # the same encoding as pywinrm's Session.run_ps
        line = f"{prefix} {base64.b64encode(script.encode('utf_16_le')).decode('ascii')}"
        assert len(line) <= 8191, f"{operation}: {len(line)} characters on the command line"


def test_a_stdin_envelope_over_500_kb_is_a_fault_so_clients_chunk(shell: Shell) -> None:
    command_id = shell.protocol.run_command(shell.shell_id, encoded_command(template("recipient-read")))
    with pytest.raises(WSManFaultError) as raised:
        shell.protocol.send_command_input(shell.shell_id, command_id, b" " * 420_000, end=True)
    assert raised.value.wsman_fault_code == 2150859025
    shell.protocol.cleanup_command(shell.shell_id, command_id)


def test_shell_quota_and_unknown_shells_are_wsman_faults(
    make_stand_in: Callable[..., OnpremStandIn], password: str,
) -> None:
    stand_in = make_stand_in(max_shells_per_user=2)
    protocol = ntlm_http(stand_in, password)
    shells = [protocol.open_shell() for _ in range(2)]
    with pytest.raises(WSManFaultError) as raised:
        protocol.open_shell()
    assert raised.value.wsman_fault_code == 2150859174
    with pytest.raises(WSManFaultError) as raised:
        protocol.run_command(str(uuid.uuid4()).upper(), encoded_command(template("org-inspect")))
    assert raised.value.wsman_fault_code == 2150858843
    for shell_id in shells:
        protocol.close_shell(shell_id, close_session=False)
    assert stand_in.state()["open_shells"] == 0


# ---------------------------------------------------------------------------------------- mail-enable


def test_mail_enable_of_hundreds_writes_samba_and_a_rerun_changes_nothing(
    samba: SambaDC, test_ou: str, shell: Shell, capsys: pytest.CaptureFixture[str],
) -> None:
    count = 500
    with samba.connect() as conn:
        users = create_users(conn, test_ou, count)
    items = [item(guid, unique_alias(), archive=uuid.uuid4() if i % 10 == 0 else None)
             for i, (_, guid) in enumerate(users)]
    request = MailEnableRequest(recipients=items)
    payload = request_bytes(request)
    assert len(payload) > 2 * 128 * 1024  # several Send chunks

    started = time.perf_counter()
    first = shell.operation(request, MailEnableResponse)
    elapsed = time.perf_counter() - started
    assert [r.identity for r in first.results] == [i.identity for i in items]
    assert all(r.ok and r.changed for r in first.results), [r.error for r in first.results if r.error][:3]

    with samba.connect() as conn:
        before = {}
        for (dn, _), wanted in zip(users, items, strict=True):
            raw = read_user(conn, dn)
            assert uuid.UUID(bytes_le=raw["msExchMailboxGuid"][0]) == wanted.exchange_guid
            assert set(text_values(raw, "proxyAddresses")) == set(wanted.email_addresses)
            assert text_values(raw, "targetAddress") == [f"SMTP:{wanted.external_email_address}"]
            assert text_values(raw, "msExchRecipientTypeDetails") == ["128"]
            assert text_values(raw, "mailNickname") == [wanted.alias]
            assert text_values(raw, "mail") == [wanted.primary_smtp_address]
            assert text_values(raw, "displayName")[0].startswith("User u")  # untouched
            [legacy] = text_values(raw, "legacyExchangeDN")
            assert legacy.startswith("/o=Fabrikam/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
                                     "/cn=Recipients/cn=") and legacy.endswith(f"-{wanted.alias}")
            before[dn] = text_values(raw, "uSNChanged")
    sample = first.results[0].recipient
    assert sample is not None and sample.recipient_type_details == "MailUser"
    assert sample.exchange_guid == items[0].exchange_guid and sample.archive_guid == items[0].archive_guid
    assert sample.external_email_address == f"SMTP:{items[0].external_email_address}"

    again = shell.operation(request, MailEnableResponse)
    assert all(r.ok and not r.changed for r in again.results)
    assert [r.recipient for r in again.results] == [r.recipient for r in first.results]
    with samba.connect() as conn:
        assert {dn: text_values(read_user(conn, dn), "uSNChanged") for dn, _ in users} == before

    read = shell.operation(RecipientReadRequest(identities=[i.identity for i in items]),
                           RecipientReadResponse)
    assert [r.recipient for r in read.results] == [r.recipient for r in first.results]
    with capsys.disabled():
        print(f"\n[measure] mail-enable of {count} recipients in one command: {elapsed:.2f} s "
              f"({count / elapsed:.0f} recipients/s, {len(payload)} bytes of stdin)")


def test_remote_mailbox_mode_writes_a_remote_user_mailbox(
    samba: SambaDC, test_ou: str, shell: Shell,
) -> None:
    with samba.connect() as conn:
        [(dn, guid)] = create_users(conn, test_ou, 1)
    wanted = item(guid, unique_alias())
    response = shell.operation(MailEnableRequest(mode=MailEnableMode.REMOTE_MAILBOX, recipients=[wanted]),
                               MailEnableResponse)
    assert response.results[0].ok
    assert response.results[0].recipient.recipient_type_details == "RemoteUserMailbox"  # type: ignore[union-attr]
    with samba.connect() as conn:
        assert text_values(read_user(conn, dn), "msExchRecipientTypeDetails") == ["2147483648"]
    # the same account cannot then be made a plain mail user; an unknown account is not found
    nobody = item(uuid.uuid4(), unique_alias())
    response = shell.operation(MailEnableRequest(recipients=[wanted, nobody]), MailEnableResponse)
    mismatch, missing = (r.error for r in response.results)
    assert mismatch is not None and mismatch.type == "InvalidOperationException"
    assert "is a RemoteUserMailbox, not a MailUser" in mismatch.message
    assert missing is not None and missing.type == "ManagementObjectNotFoundException"
    assert missing.message == (f"The operation couldn't be performed because object '{nobody.identity}' "
                               "couldn't be found on 'dc1.lab.example'.")


def test_hostile_display_names_and_aliases_stay_data(
    samba: SambaDC, test_ou: str, stand_in: OnpremStandIn, shell: Shell, ca_file: Path,
) -> None:
    hostile_display = "x'; Remove-Mailbox -Identity * -Confirm:$false #\"$(Stop-Computer)"
    alias = f"o'neil{uuid.uuid4().hex[:6]}$env{{x}}|`&"
    with samba.connect() as conn:
        [(dn, guid)] = create_users(conn, test_ou, 1, display=hostile_display)
    wanted = item(guid, alias, display=hostile_display)
    response = shell.operation(MailEnableRequest(recipients=[wanted]), MailEnableResponse)
    assert response.results[0].ok, response.results[0].error
    with samba.connect() as conn:
        raw = read_user(conn, dn)
    assert text_values(raw, "mailNickname") == [alias]
    assert text_values(raw, "displayName") == [hostile_display]
    assert f"SMTP:{alias}@{DOMAIN}" in text_values(raw, "proxyAddresses")

    with tls_client(ca_file) as client:
        scripts = client.get(f"https://127.0.0.1:{stand_in.https_port}/lab/scripts").json()
    template_texts = {template(op) for op in OPERATIONS}
    assert scripts and all(entry["script"] in template_texts for entry in scripts)
    logged = json.dumps(scripts)
    for secret in (alias, hostile_display, str(guid), str(wanted.exchange_guid), "neil"):
        assert secret not in logged
    assert {"time", "user", "op", "version", "sha256", "script", "stdin_bytes"} <= set(scripts[-1])
    assert scripts[-1]["user"] == USER and scripts[-1]["stdin_bytes"] > 0


def test_a_proxy_address_held_elsewhere_fails_that_recipient_only(
    samba: SambaDC, test_ou: str, shell: Shell,
) -> None:
    with samba.connect() as conn:
        (dn_a, guid_a), (_, guid_b), (_, guid_c) = create_users(conn, test_ou, 3)
    shared = f"shared{uuid.uuid4().hex[:8]}@{DOMAIN}"
    first = item(guid_a, unique_alias(), extra=[f"smtp:{shared}"])
    assert shell.operation(MailEnableRequest(recipients=[first]), MailEnableResponse).results[0].ok

    clash = item(guid_b, unique_alias(), extra=[f"smtp:{shared.upper()}"])
    fine = item(guid_c, unique_alias())
    response = shell.operation(MailEnableRequest(recipients=[clash, fine]), MailEnableResponse)
    failed, passed = response.results
    assert not failed.ok and failed.error is not None
    assert failed.error.type == "ProxyAddressExistsException"
    holder = "lab.example/" + "/".join(reversed([part.split("=", 1)[1] for part in dn_a.split(",")
                                                 if not part.startswith("DC=")]))
    assert failed.error.message == (
        f'The proxy address "smtp:{shared.upper()}" is already being used by the proxy addresses or '
        f'LegacyExchangeDN of "{holder}". Please choose another proxy address.')
    assert passed.ok and passed.changed
    # a mailbox is refused as a target of mail-enable
    with samba.connect() as conn:
        conn.modify(dn_a, {"msExchRecipientTypeDetails": [(ldap3.MODIFY_REPLACE, [1])]})
    again = shell.operation(MailEnableRequest(recipients=[first]), MailEnableResponse).results[0]
    assert again.error is not None and "is a UserMailbox, not a MailUser" in again.error.message


# ---------------------------------------------------------------------------------------- org


def test_org_prepare_changes_only_what_differs(shell: Shell) -> None:
    request = OrgPrepareRequest(
        accepted_domains=[
            AcceptedDomainChange(domain_name=DOMAIN, domain_type=DomainType.INTERNAL_RELAY),
            AcceptedDomainChange(domain_name="lab.example", domain_type=DomainType.INTERNAL_RELAY),
        ],
        send_connectors=[SendConnectorChange(name="To Exchange Online",
                                             address_spaces=[f"SMTP:{TENANT_ROUTING};1"])],
        enable_mrsproxy=["EX01\\EWS (Default Web Site)", "EX02\\EWS (Default Web Site)", "EX09\\EWS"],
        mount_databases=["DB03"],
    )
    first = shell.operation(request, OrgPrepareResponse)
    assert first.changes == [
        f"Accepted domain '{DOMAIN}' added as InternalRelay",
        "Accepted domain 'lab.example' changed from Authoritative to InternalRelay",
        "Send connector 'To Exchange Online' created",
        "MRSProxy enabled on 'EX01\\EWS (Default Web Site)'",
        "MRSProxy enabled on 'EX02\\EWS (Default Web Site)'",
        "Database 'DB03' mounted",
    ]
    assert [e.type for e in first.errors] == ["ManagementObjectNotFoundException"]
    assert "EX09\\EWS" in first.errors[0].message
    second = shell.operation(request, OrgPrepareResponse)
    assert second.changes == [] and len(second.errors) == 1
    state = shell.operation(OrgInspectRequest(), OrgInspectResponse)
    assert all(d.mounted for d in state.mailbox_databases)
    assert all(v.mrsproxy_enabled for v in state.ews_virtual_directories)
    assert state.send_connectors[0].address_spaces == [f"SMTP:{TENANT_ROUTING};1"]


# ---------------------------------------------------------------------------------------- MRSProxy


def test_mrsproxy_follows_the_virtual_directory_and_checks_the_target(
    samba: SambaDC, test_ou: str, make_stand_in: Callable[..., OnpremStandIn], password: str,
    ca_file: Path,
) -> None:
    stand_in = make_stand_in(mrsproxy_max_connections=3)
    shell = Shell(https(stand_in, password, ca_file))
    url = f"https://127.0.0.1:{stand_in.https_port}{PATH}"
    auth = ("LAB\\hbadmin", password)
    with tls_client(ca_file) as client:
        def call(body: dict[str, Any], credentials: tuple[str, str] = auth) -> httpx.Response:
            return client.post(url, json=body, auth=credentials)

        assert call({"op": "ping"}).status_code == 404
        assert call({"op": "ping"}, ("LAB\\hbadmin", "wrong")).status_code == 401
        shell.operation(OrgPrepareRequest(enable_mrsproxy=["EX01\\EWS (Default Web Site)"]),
                        OrgPrepareResponse)
        ping = call({"op": "ping"})
        assert ping.status_code == 200 and ping.json()["ok"] and ping.json()["server"] == "EX01"

        with samba.connect() as conn:
            [(dn, guid)] = create_users(conn, test_ou, 1)
        wanted = item(guid, unique_alias(), x500=False)
        assert shell.operation(MailEnableRequest(recipients=[wanted]), MailEnableResponse).results[0].ok
        legacy = ("/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/"
                  f"cn={uuid.uuid4().hex}-x")
        target = {"op": "validate-target", "exchange_guid": str(wanted.exchange_guid),
                  "legacy_exchange_dn": legacy, "primary_smtp_address": wanted.primary_smtp_address,
                  "target_delivery_domain": DOMAIN, "target_database": "DB01"}
        refused = call(target).json()
        holder = f"lab.example/{test_ou.split(',')[0].split('=')[1]}/u0000"
        assert refused["ok"] is False
        assert refused["error"]["message"] == MESSAGES["x500-proxy"].format(identity=holder, legacy_dn=legacy)

        fixed = wanted.model_copy(update={"email_addresses": [*wanted.email_addresses, f"X500:{legacy}"]})
        assert shell.operation(MailEnableRequest(recipients=[fixed]), MailEnableResponse).results[0].changed
        passed = call(target).json()
        assert passed["ok"] is True and passed["target_identity"] == str(guid)
        assert call({**target, "target_database": "DB03"}).json()["error"]["message"] == \
            MESSAGES["database"].format(database="DB03")
        assert call({**target, "exchange_guid": str(uuid.uuid4())}).json()["error"]["message"].startswith(
            "Cannot find a recipient that has mailbox GUID")

        moves = [str(uuid.uuid4()) for _ in range(4)]
        assert all(call({"op": "open", "move_id": m}).json()["ok"] for m in moves[:3])
        limited = call({"op": "open", "move_id": moves[3]}).json()
        assert limited["error"]["type"] == "MRSProxyConnectionLimitReachedTransientException"
        assert limited["error"]["message"] == MESSAGES["connection-limit"].format(limit=3, server="EX01")
        assert call({"op": "close", "move_id": moves[0]}).json()["ok"]
        assert call({"op": "open", "move_id": moves[3]}).json()["ok"]

        done = call({"op": "complete", "exchange_guid": str(wanted.exchange_guid), "target_database": "DB01"})
        assert done.json()["ok"]
    with samba.connect() as conn:
        raw = read_user(conn, dn)
    assert text_values(raw, "msExchRecipientTypeDetails") == ["1"] and not raw.get("targetAddress")
    assert stand_in.state()["org"]["mailboxes"][str(guid)]["database"] == "DB01"
    shell.close()


# ---------------------------------------------------------------------------------------- lab control


def test_faults_and_latency_are_injected_through_the_control_api(
    samba: SambaDC, test_ou: str, stand_in: OnpremStandIn, password: str, ca_file: Path,
) -> None:
    base = f"https://127.0.0.1:{stand_in.https_port}/lab"
    with samba.connect() as conn:
        (_, guid_a), (_, guid_b) = create_users(conn, test_ou, 2)
    broken, fine = item(guid_a, unique_alias()), item(guid_b, unique_alias())
    with tls_client(ca_file) as client:
        assert client.get(f"{base}/health").json()["ok"] is True
        client.post(f"{base}/faults", json={"operation": "mail-enable", "alias": broken.alias, "error": {
            "type": "ADOperationException", "message": "Active Directory is busy."}})
        client.post(f"{base}/faults", json={"operation": "org-inspect", "error": {
            "type": "ADServerSettingsChangedException", "message": "The DC went away."}, "times": 1})
        client.post(f"{base}/latency", json={"ms": [1500, 1500]})
        # OperationTimeout 1 s: the first Receive is held, times out (fault 2150858793), is retried
        shell = Shell(ntlm_http(stand_in, password, operation_timeout_sec=1, read_timeout_sec=5))
        started = time.perf_counter()
        response = shell.operation(MailEnableRequest(recipients=[broken, fine]), MailEnableResponse)
        assert time.perf_counter() - started >= 1.5
        client.post(f"{base}/latency", json={"ms": [0, 0]})
        assert response.results[0].error is not None
        assert response.results[0].error.type == "ADOperationException"
        assert response.results[1].ok
        failed = shell.run_script(template("org-inspect"), b"{}")
        assert failed.exit_code == 1 and b"The DC went away." in failed.stderr
        assert shell.run_script(template("org-inspect"), b"{}").exit_code == 0  # times: 1
        shell.close()
        assert client.delete(f"{base}/faults").json()["ok"]
        state = client.get(f"{base}/state").json()
        assert state["open_shells"] == 0 and state["faults"] == []


def test_python_m_lab_onprem_serves_until_sigterm(
    samba: SambaDC, lab_files: tuple[LabCertificates, Path, str], tmp_path: Path,
) -> None:
    certs, users, _ = lab_files
    settings = samba.settings
    config_file = tmp_path / "onprem.json"
    OnpremConfig(http_port=0, https_port=0, cert_file=certs.cert_file, key_file=certs.key_file,
                 users_file=users, state_dir=tmp_path / "state", ad_ldaps_url=settings.ldaps_url,
                 ad_bind_user=settings.bind_user, ad_password_file=settings.password_file,
                 ad_ca_file=settings.ca_file, ad_base_dn=settings.base_dn).to_file(config_file)
    assert OnpremConfig.from_file(config_file).latency_ms == (0, 0)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-m", "lab.onprem", "--config", str(config_file)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        with tls_client(certs.ca_file) as client:
            health = client.get(f"https://127.0.0.1:{ready['https_port']}/lab/health")
        assert health.json()["ok"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
