"""The on-prem Exchange shell client, with the real pywinrm against the on-prem stand-in.

The stand-in runs with `templates_dir` set, so every command that succeeds
here was byte-identical to a template; it records each script it ran.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog.testing

from agents.commands.connectivity import CHECKS
from agents.runtime.config import HomeboundConfig, OnpremExchangeSection
from agents.shared.exchange_shell import (
    ExchangeShell,
    ShellCommandFailed,
    ShellCredentialsRefused,
    ShellSettings,
    ShellTlsRefused,
    ShellUnavailable,
    command_line,
    parse_clixml_error,
    request_json,
)
from contracts.events import ErrorClass
from contracts.onprem import (
    MailEnableItem,
    MailEnableRequest,
    MailEnableResponse,
    Operation,
    OrgInspectRequest,
    OrgInspectResponse,
    RecipientReadRequest,
)
from lab.certs import LabCertificates
from lab.samba import SambaDC
from tests.agents.conftest import ONPREM_USER, OnpremLab, make_onprem_lab_files, start_onprem
from tests.lab.onprem_client import template


@pytest.fixture(scope="module")
def onprem_lab_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabCertificates, Path, str]:
    return make_onprem_lab_files(tmp_path_factory.mktemp("onprem-lab"))


@pytest.fixture
def lab(samba: SambaDC, onprem_lab_files: tuple[LabCertificates, Path, str],
        tmp_path: Path) -> Iterator[OnpremLab]:
    started = start_onprem(samba, onprem_lab_files, tmp_path / "state")
    yield started
    started.stand_in.stop()


def settings(lab: OnpremLab, **overrides: object) -> ShellSettings:
    values: dict[str, object] = {"url": lab.http_url, "username": ONPREM_USER, "password": lab.password,
                                 "auth": "ntlm", "ca_file": lab.certs.ca_file}
    return ShellSettings(**{**values, **overrides})  # type: ignore[arg-type]


def fake_recipients(count: int, proxies: int) -> list[MailEnableItem]:
    """Accounts that do not exist, each with *proxies* SMTP addresses: JSON bulk, no AD writes."""
    items = []
    for index in range(count):
        alias = f"bulk{index:05d}"
        addresses = [f"SMTP:{alias}@fabrikam.example",
                     *(f"smtp:{alias}.{n}@fabrikam.example" for n in range(proxies))]
        items.append(MailEnableItem(
            identity=uuid.uuid4(), alias=alias, display_name=f"Bulk {index} ✓ Ünïcode",
            external_email_address=f"{alias}@fabrikam.mail.onmicrosoft.com",
            primary_smtp_address=f"{alias}@fabrikam.example", exchange_guid=uuid.uuid4(),
            email_addresses=addresses))
    return items


# ---------------------------------------------------------------------------------------- transports


def test_ntlm_over_http_reuses_one_sealed_shell_for_many_commands(
    lab: OnpremLab, capsys: pytest.CaptureFixture[str],
) -> None:
    with ExchangeShell(settings(lab, shells=1)) as shell:
        first = shell.run(OrgInspectRequest())
        assert lab.stand_in.state()["open_shells"] == 1
        rounds = 20
        started = time.perf_counter()
        for _ in range(rounds):
            assert shell.run(OrgInspectRequest()) == first
        per_command = (time.perf_counter() - started) / rounds
        assert lab.stand_in.state()["open_shells"] == 1
    assert lab.stand_in.state()["open_shells"] == 0  # close() closed it
    assert isinstance(first, OrgInspectResponse) and first.exchange_version.startswith("Version 15.2")
    scripts = lab.scripts()
    assert len(scripts) == rounds + 1
    assert {entry["script"] for entry in scripts} == {template("org-inspect")}
    with capsys.disabled():
        print(f"\n[measure] one org-inspect through ExchangeShell (NTLM, sealed, open shell): "
              f"{per_command * 1000:.1f} ms")


def test_basic_over_https_verifies_the_server_against_ca_file_not_the_environment(
    lab: OnpremLab, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")  # must play no part
    with ExchangeShell(settings(lab, url=lab.https_url, auth="basic")) as shell:
        assert shell.run(OrgInspectRequest()).mailbox_databases
    with ExchangeShell(settings(lab, url=lab.https_url, auth="ntlm")) as shell:  # NTLM + channel binding
        assert shell.run(OrgInspectRequest()).mailbox_databases
    system_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    with ExchangeShell(settings(lab, url=lab.https_url, auth="basic", ca_file=system_bundle)) as shell, \
            pytest.raises(ShellTlsRefused, match=r"(?i)certificate verify failed") as refused:
        shell.run(OrgInspectRequest())
    assert refused.value.error_class is ErrorClass.PERMANENT


def test_turning_verification_off_is_explicit_and_logged(lab: OnpremLab) -> None:
    with structlog.testing.capture_logs() as logs, \
            ExchangeShell(settings(lab, url=lab.https_url, auth="basic", ca_file=None,
                                   verify_tls=False)) as shell:
        assert shell.run(OrgInspectRequest()).exchange_version
    assert any(entry["event"] == "tls.verification_disabled" for entry in logs)


def test_basic_over_plain_http_and_a_missing_password_are_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="in clear"):
        ShellSettings(url="http://ex01:5985/wsman", username="u", password="p", auth="basic")
    with pytest.raises(ValueError, match="PASSWORD_FILE"):
        ShellSettings(url="https://ex01:5986/wsman", username="u", password=None)


def test_settings_come_from_the_onprem_exchange_section(lab: OnpremLab) -> None:
    section = OnpremExchangeSection.model_validate(lab.section(shells=3, command_timeout_seconds=42))
    built = ShellSettings.from_section(section)
    assert (built.url, built.shells, built.command_timeout_seconds) == (lab.http_url, 3, 42)
    assert lab.password not in repr(built)


def test_config_check_connect_inspects_the_org_and_names_the_version(lab: OnpremLab) -> None:
    config = HomeboundConfig.model_validate({"onprem_exchange": lab.section()})
    assert CHECKS["onprem_exchange"](config) == "Exchange Version 15.2 (Build 1544.4); servers EX01, EX02"
    assert [e["op"] for e in lab.scripts()] == ["org-inspect"]
    assert lab.stand_in.state()["open_shells"] == 0


# ---------------------------------------------------------------------------------------- data path


def test_a_large_request_is_chunked_and_accepted(lab: OnpremLab, capsys: pytest.CaptureFixture[str]) -> None:
    request = MailEnableRequest(recipients=fake_recipients(1000, proxies=24))
    payload = request_json(request)
    assert 1_000_000 < len(payload) < 2_000_000  # ~2,000 ordinary recipients' worth of JSON
    assert payload.isascii() and b"\\u00dc" in payload  # non-ASCII travels escaped
    with ExchangeShell(settings(lab)) as shell:
        started = time.perf_counter()
        response = shell.run(request)
        elapsed = time.perf_counter() - started
        read = shell.run(RecipientReadRequest(identities=[uuid.uuid4() for _ in range(5000)]))
    assert isinstance(response, MailEnableResponse)
    assert [r.identity for r in response.results] == [r.identity for r in request.recipients]
    assert {r.error.type for r in response.results if r.error} == {"ManagementObjectNotFoundException"}
    assert len(read.results) == 5000 and not any(r.found for r in read.results)
    logged = [e for e in lab.scripts() if e["op"] == "mail-enable"]
    assert [e["stdin_bytes"] for e in logged] == [len(payload)]  # every chunk arrived, in one command
    assert logged[0]["script"] == template("mail-enable")
    with capsys.disabled():
        print(f"\n[measure] a {len(payload) / 1e6:.2f} MB request in {len(payload) // (96 * 1024) + 1} "
              f"chunks, run and answered in {elapsed:.2f} s")


def test_the_command_line_holds_only_the_template() -> None:
    for operation in Operation:
        line = command_line(operation)
        assert len(line) <= 8191
        assert line.startswith("powershell -NoLogo -NoProfile -NonInteractive -EncodedCommand ")


def test_concurrent_callers_share_a_small_pool_of_shells(lab: OnpremLab) -> None:
    errors: list[BaseException] = []
    peak = 0

    def work() -> None:
        try:
            for _ in range(5):
                shell.run(OrgInspectRequest())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with ExchangeShell(settings(lab, shells=2)) as shell:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, lab.stand_in.state()["open_shells"])
            time.sleep(0.005)
    assert not errors
    assert peak <= 2
    assert len([e for e in lab.scripts() if e["op"] == "org-inspect"]) == 40


# ---------------------------------------------------------------------------------------- failures


def test_a_wrong_password_is_a_permanent_credentials_error(lab: OnpremLab) -> None:
    for overrides in ({}, {"url": lab.https_url, "auth": "basic"}):
        with ExchangeShell(settings(lab, password="not-the-password", **overrides)) as shell, \
                pytest.raises(ShellCredentialsRefused) as refused:
            shell.run(OrgInspectRequest())
        assert refused.value.error_class is ErrorClass.PERMANENT
        assert "not-the-password" not in str(refused.value) + refused.value.remediation
        assert lab.password not in str(refused.value)


def test_the_server_down_is_a_transient_error_and_the_shell_comes_back_after_a_restart(
    samba: SambaDC, onprem_lab_files: tuple[LabCertificates, Path, str], tmp_path: Path,
) -> None:
    lab = start_onprem(samba, onprem_lab_files, tmp_path / "state")
    ports = {"http_port": lab.stand_in.http_port, "https_port": lab.stand_in.https_port}
    with ExchangeShell(settings(lab, operation_timeout_seconds=2)) as shell:
        assert shell.run(OrgInspectRequest()).exchange_version
        lab.stand_in.stop()
        started = time.perf_counter()
        with pytest.raises(ShellUnavailable) as down:
            shell.run(OrgInspectRequest())
        assert time.perf_counter() - started < 15
        assert down.value.error_class is ErrorClass.TRANSIENT
        assert lab.password not in str(down.value)
        again = start_onprem(samba, onprem_lab_files, tmp_path / "state", **ports)
        try:
            assert shell.run(OrgInspectRequest()).exchange_version  # a new connection and shell
        finally:
            again.stand_in.stop()


def test_a_script_that_fails_as_a_whole_carries_the_clixml_error(lab: OnpremLab) -> None:
    lab.control("POST", "faults", {"operation": "org-inspect", "error": {
        "type": "ADServerSettingsChangedException", "message": "The DC went away."}})
    lab.control("POST", "faults", {"operation": "org-inspect", "error": {
        "type": "UnauthorizedAccessException", "message": "Access is denied."}})
    with ExchangeShell(settings(lab)) as shell:
        with pytest.raises(ShellCommandFailed) as passing:
            shell.run(OrgInspectRequest())
        with pytest.raises(ShellCommandFailed) as lasting:
            shell.run(OrgInspectRequest())
        assert shell.run(OrgInspectRequest()).exchange_version  # the same shell goes on
    assert passing.value.message == "The DC went away."
    assert passing.value.exception_type == "ADServerSettingsChangedException"
    assert passing.value.error_class is ErrorClass.TRANSIENT
    assert lasting.value.error_class is ErrorClass.PERMANENT  # the classifier knows "Access is denied"
    assert "credentials" in lasting.value.remediation


def test_a_script_that_runs_too_long_is_abandoned_and_the_next_command_gets_a_new_shell(
    lab: OnpremLab,
) -> None:
    lab.control("POST", "latency", {"ms": [2500, 2500]})
    with ExchangeShell(settings(lab, shells=1, operation_timeout_seconds=1,
                                command_timeout_seconds=1.0)) as shell:
        with pytest.raises(ShellUnavailable, match="did not finish"):
            shell.run(OrgInspectRequest())
        lab.control("POST", "latency", {"ms": [0, 0]})
        assert shell.run(OrgInspectRequest()).exchange_version
        assert lab.stand_in.state()["open_shells"] == 1  # the abandoned shell was closed
    assert lab.stand_in.state()["open_shells"] == 0


@pytest.mark.parametrize(("stderr", "message", "error_type"), [
    (b'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
     b'<S S="Error">Couldn\'t find database &quot;DB9&quot;._x000D__x000A_</S>'
     b'<S S="Error">    + CategoryInfo          : NotSpecified: (:) [Get-MailboxDatabase], '
     b'ManagementObjectNotFoundException_x000D__x000A_</S>'
     b'<S S="Error">    + FullyQualifiedErrorId : 8E1A2F3B,Microsoft.Exchange.GetMailboxDatabase'
     b'_x000D__x000A_</S>'
     b'<S S="Progress" >ignored</S></Objs>',
     'Couldn\'t find database "DB9".', "ManagementObjectNotFoundException"),
    (b"The command line is too long.\r\n", "The command line is too long.", ""),
    (b"#< CLIXML\r\n<Objs><S S=\"Error\">truncated", "", ""),
])
def test_clixml_errors_are_read_without_an_xml_parser(stderr: bytes, message: str, error_type: str) -> None:
    assert parse_clixml_error(stderr) == (message, error_type)
