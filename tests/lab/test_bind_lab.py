"""The lab's BIND9 takes TSIG-signed RFC 2136 updates and nothing else, as the cutover agent needs.

One named per test session, on a free port, in pytest's temporary directory,
exercised with dnspython exactly as the DNS cutover agent will use it.
"""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from lab.bind import BindNotInstalled, BindServer
from lab.ports import free_port, port_is_free

pytestmark = pytest.mark.lab

ZONE = "fabrikam.example"


@pytest.fixture(scope="session")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    if shutil.which("named") is None:
        pytest.fail("BIND9 is not installed: run `apt-get install -y bind9 bind9-utils`")
    server = BindServer(tmp_path_factory.mktemp("bind-lab"), port=free_port(udp=True))
    server.ensure_running()
    yield server
    server.stop()


def _update(
    keyring: dict[str, str] | None = None, zone: str = ZONE
) -> dns.update.UpdateMessage:
    if keyring is None:
        return dns.update.UpdateMessage(zone)
    return dns.update.UpdateMessage(
        zone, keyring=dns.tsigkeyring.from_text(keyring), keyname=next(iter(keyring)),
        keyalgorithm=dns.tsig.HMAC_SHA256,
    )


def _signed_update(bind: BindServer, zone: str = ZONE) -> dns.update.UpdateMessage:
    settings = bind.settings
    return _update({settings.key_name: settings.secret()}, zone)


def _send(bind: BindServer, update: dns.update.UpdateMessage) -> dns.message.Message:
    return dns.query.tcp(update, bind.listen, port=bind.port, timeout=5)


def _texts(bind: BindServer, name: str, rdtype: str) -> list[str]:
    answer = bind.query(name, rdtype)
    return sorted(rdata.to_text() for rrset in answer.answer for rdata in rrset)


def test_a_zone_starts_as_an_exchange_online_customer_has_it(bind: BindServer) -> None:
    mx = bind.query(ZONE, "MX")
    assert mx.answer[0].ttl == 3600
    assert _texts(bind, ZONE, "MX") == ["0 fabrikam-example.mail.protection.outlook.com."]
    assert _texts(bind, ZONE, "TXT") == ['"v=spf1 include:spf.protection.outlook.com -all"']
    assert _texts(bind, f"autodiscover.{ZONE}", "CNAME") == ["autodiscover.outlook.com."]
    assert _texts(bind, f"mail.{ZONE}", "A") == ["192.0.2.25"]
    assert len(_texts(bind, ZONE, "SOA")) == 1


def test_a_signed_update_is_accepted_visible_and_survives_a_restart(bind: BindServer) -> None:
    update = _signed_update(bind)
    update.replace("_homebound-check", 300, "TXT", '"signed"')
    response = _send(bind, update)
    assert response.rcode() == dns.rcode.NOERROR
    assert _texts(bind, f"_homebound-check.{ZONE}", "TXT") == ['"signed"']

    assert bind.stop()
    bind.ensure_running()
    assert _texts(bind, f"_homebound-check.{ZONE}", "TXT") == ['"signed"']


def test_an_unsigned_update_is_refused(bind: BindServer) -> None:
    update = _update()
    update.replace("_homebound-unsigned", 300, "TXT", '"nope"')
    response = _send(bind, update)
    assert response.rcode() == dns.rcode.REFUSED
    assert _texts(bind, f"_homebound-unsigned.{ZONE}", "TXT") == []


def test_an_update_signed_with_the_wrong_secret_is_rejected(bind: BindServer) -> None:
    wrong = "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1sYWJzLWtleSE="
    update = _update({bind.settings.key_name: wrong})
    update.replace("_homebound-forged", 300, "TXT", '"forged"')
    with pytest.raises(dns.tsig.PeerBadSignature):
        _send(bind, update)
    assert _texts(bind, f"_homebound-forged.{ZONE}", "TXT") == []


def test_an_update_signed_with_an_unknown_key_is_rejected(bind: BindServer) -> None:
    update = _update({"someone-else": bind.settings.secret()})
    update.replace("_homebound-stranger", 300, "TXT", '"stranger"')
    with pytest.raises(dns.tsig.PeerBadKey):
        _send(bind, update)


def test_a_zone_added_while_running_is_served_and_updatable(bind: BindServer) -> None:
    bind.add_zone("contoso.example")
    assert _texts(bind, "contoso.example", "MX") == [
        "0 contoso-example.mail.protection.outlook.com."
    ]
    update = _signed_update(bind, "contoso.example")
    update.replace("@", 300, "MX", "10 mail.contoso.example.")
    assert _send(bind, update).rcode() == dns.rcode.NOERROR
    assert _texts(bind, "contoso.example", "MX") == ["10 mail.contoso.example."]
    assert "contoso.example" in bind.settings.zones


def test_the_secret_is_private_and_only_the_key_file_names_it(bind: BindServer) -> None:
    settings = bind.settings
    assert stat.S_IMODE(settings.secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.secret_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(bind.key_file.stat().st_mode) == 0o600
    assert settings.secret() not in bind.conf_file.read_text()
    cmdline = Path(f"/proc/{bind.process.pid()}/cmdline").read_bytes().decode()
    assert settings.secret() not in cmdline
    assert (settings.server, settings.algorithm) == ("127.0.0.1", "hmac-sha256")


def test_fresh_starts_over_with_a_new_key_and_pristine_zones(tmp_path: Path) -> None:
    server = BindServer(tmp_path, port=free_port(udp=True))
    try:
        server.ensure_running()
        first_secret = server.settings.secret()
        update = _signed_update(server)
        update.replace("@", 300, "MX", "10 mail.fabrikam.example.")
        _send(server, update)
        server.ensure_running(fresh=True)
        assert server.settings.secret() != first_secret
        assert _texts(server, ZONE, "MX") == ["0 fabrikam-example.mail.protection.outlook.com."]
    finally:
        server.stop()
    assert port_is_free(server.listen, server.port, udp=True)


def test_a_taken_port_is_reported_instead_of_a_silent_timeout(
    bind: BindServer, tmp_path: Path
) -> None:
    other = BindServer(tmp_path, port=bind.port)
    with pytest.raises(RuntimeError, match=f"port {bind.port} on 127.0.0.1 is already in use"):
        other.ensure_running()
    assert other.process.pid() is None


def test_a_broken_zone_file_is_reported_before_named_starts(tmp_path: Path) -> None:
    server = BindServer(tmp_path, port=free_port(udp=True))
    zone_file = server.zones_dir / f"{ZONE}.zone"
    zone_file.parent.mkdir(parents=True)
    zone_file.write_text("$TTL 3600\n@ IN SOA broken\n")
    with pytest.raises(RuntimeError, match=f"named-checkzone rejected zone {ZONE}"):
        server.ensure_running()
    assert server.process.pid() is None


def test_missing_bind_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(BindNotInstalled, match=r"apt-get install -y bind9 bind9-utils"):
        BindServer(tmp_path).ensure_running()


def test_a_domain_that_is_not_a_host_name_never_reaches_named_conf(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a DNS domain name"):
        BindServer(tmp_path, domains=['evil.example"; }; include "/etc/shadow'])
