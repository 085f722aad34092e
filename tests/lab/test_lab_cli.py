"""`homebound lab up | status | seed | down`, run as an operator runs them, checked with real clients.

Two labs are exercised:

* the shared test lab (`lab_dir_for_tests()`): `lab up` joins the session's
  Samba (only one Samba can listen on 127.0.0.1) and starts BIND and the
  stand-ins on free ports; `lab down --keep-samba` leaves that Samba to the
  other tests;
* a fresh directory inside a private network namespace (`unshare -n`, its
  own 127.0.0.1), where the whole lab starts with its default ports, is
  timed, and `lab down` must leave no process and no port behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
import httpx
import ldap3
import msal
import pytest
import winrm
import winrm.protocol

from lab.ports import free_port, port_is_free
from lab.samba import SambaDC
from tests.conftest import REPO, lab_dir_for_tests

pytestmark = pytest.mark.lab

ISOLATED_DIR_VARIABLE = "HOMEBOUND_TEST_ISOLATED_LAB_DIR"
DEFAULT_PORTS = (636, 5353, 8443, 5985, 5986)


def lab_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def succeeded(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


# ---------------------------------------------------------------------- probes

def ldaps_bind(settings: dict[str, Any]) -> None:
    ad = settings["active_directory"]
    host, port = ad["url"].removeprefix("ldaps://").rsplit(":", 1)
    tls = ldap3.Tls(ca_certs_file=ad["ca_file"], validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(host, port=int(port), use_ssl=True, tls=tls, connect_timeout=5)
    password = Path(ad["password_file"]).read_text().strip()
    with ldap3.Connection(server, ad["bind_user"], password, auto_bind=True,
                          raise_exceptions=True) as conn:
        assert conn.search(ad["users_ou"], "(objectClass=organizationalUnit)",
                           search_scope=ldap3.BASE)


def dns_soa_and_signed_update(settings: dict[str, Any]) -> None:
    dns_settings, zone = settings["dns"], settings["onprem_exchange"]["target_delivery_domain"]
    server, port = dns_settings["server"], dns_settings["port"]
    answer = dns.query.udp(dns.message.make_query(zone, "SOA"), server, port=port, timeout=3)
    assert answer.rcode() == dns.rcode.NOERROR and answer.answer
    secret = Path(dns_settings["tsig_secret_file"]).read_text().strip()
    update = dns.update.UpdateMessage(
        zone, keyring=dns.tsigkeyring.from_text({dns_settings["tsig_key_name"]: secret}),
        keyname=dns_settings["tsig_key_name"], keyalgorithm=dns.tsig.HMAC_SHA256,
    )
    update.replace("_lab-cli-check", 60, "TXT", '"ok"')
    assert dns.query.tcp(update, server, port=port, timeout=5).rcode() == dns.rcode.NOERROR


def health(url: str, ca_file: str) -> httpx.Response:
    context = ssl.create_default_context(cafile=ca_file)
    return httpx.get(url, verify=context, timeout=5, trust_env=False)


def exchange_online_token_and_cmdlet(settings: dict[str, Any]) -> None:
    """The app registration `lab up` made works with msal, and the admin API answers."""
    exo = settings["exchange_online"]
    http = httpx.Client(verify=ssl.create_default_context(cafile=exo["ca_file"]), trust_env=False)
    with http:
        app = msal.ConfidentialClientApplication(
            exo["client_id"], client_credential=Path(exo["client_secret_file"]).read_text().strip(),
            authority=f"{exo['authority_host']}/{exo['tenant_id']}", http_client=http,
            instance_discovery=False,
        )
        token = app.acquire_token_for_client(scopes=["https://outlook.office365.com/.default"])
        assert "access_token" in token, token.get("error_description")
        reply = http.post(
            f"{exo['api_base_url']}/adminapi/beta/{exo['tenant_id']}/InvokeCommand",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            json={"CmdletInput": {"CmdletName": "Get-AcceptedDomain", "Parameters": {}}},
        )
    assert reply.status_code == 200
    domains = {d["DomainName"] for d in reply.json()["value"]}
    assert {settings["onprem_exchange"]["target_delivery_domain"], exo["tenant"],
            exo["routing_domain"]} <= domains


def winrm_shell_opens(settings: dict[str, Any]) -> None:
    """NTLM over verified HTTPS with the account and password file `lab up` made."""
    onprem = settings["onprem_exchange"]
    protocol = winrm.protocol.Protocol(
        onprem["url"], transport="ntlm", username=onprem["username"],
        password=Path(onprem["password_file"]).read_text().strip(),
        server_cert_validation="validate", ca_trust_path=onprem["ca_file"],
    )
    protocol.close_shell(protocol.open_shell())


def every_endpoint_answers(settings: dict[str, Any]) -> None:
    ldaps_bind(settings)
    dns_soa_and_signed_update(settings)
    ca_file = settings["exchange_online"]["ca_file"]
    assert health(f"{settings['lab']['exo_control_url']}/health", ca_file).status_code == 200
    assert health(f"{settings['lab']['onprem_control_url']}/health", ca_file).status_code == 200
    exchange_online_token_and_cmdlet(settings)
    winrm_shell_opens(settings)


def alive(pid: int) -> bool:
    """True while *pid* or anything left in its session (children it forked) still runs."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields after the command: state, ppid, pgrp, session
        if fields[0] not in ("Z", "X") and (int(stat.parent.name) == pid or int(fields[3]) == pid):
            return True
    return False


def gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """The PIDs (or their sessions) still alive after *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def processes_naming(lab_dir: str, timeout: float = 5.0) -> list[str]:
    """Command lines of live processes that mention *lab_dir*, after up to *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if lab_dir in text and cmdline.parent.name != str(os.getpid()):
                found.append(text)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def secrets_of(lab_dir: Path) -> list[str]:
    return [p.read_text().strip() for p in (lab_dir / "secrets").iterdir() if p.is_file()]


# ---------------------------------------------------------------------- the shared test lab

@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"dns": free_port(udp=True), "exo": free_port(), "winrm-http": free_port(),
            "winrm-https": free_port()}


def up_arguments(ports: dict[str, int]) -> list[str]:
    return [f"--{name}-port={port}" for name, port in ports.items()]


@pytest.fixture(scope="module")
def lab_to_ourselves(samba: SambaDC) -> Iterator[None]:
    """Concurrent pytest sessions share the test lab: one at a time brings its servers up there."""
    with open(lab_dir_for_tests() / ".lab-cli-tests.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="module")
def lab_up(
    lab_to_ourselves: None, ports: dict[str, int]
) -> Iterator[subprocess.CompletedProcess[str]]:
    lab_dir = str(lab_dir_for_tests())
    done = lab_cli("up", "--dir", lab_dir, "--mailboxes", "20", "--json", *up_arguments(ports))
    yield done
    lab_cli("down", "--dir", lab_dir, "--keep-samba")


@pytest.fixture(scope="module")
def lab_json(lab_up: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(succeeded(lab_up).stdout)
    return result


def test_lab_up_joins_the_sessions_samba_and_every_endpoint_answers(
    lab_json: dict[str, Any], samba: SambaDC, ports: dict[str, int]
) -> None:
    assert lab_json["pids"]["samba"] == samba.process.pid()
    assert lab_json["ports"]["named"] == [ports["dns"]]
    assert lab_json["ports"]["exo"] == [ports["exo"]]
    assert lab_json["ports"]["onprem"] == [ports["winrm-http"], ports["winrm-https"]]
    assert lab_json["exchange_online"]["api_base_url"] == f"https://127.0.0.1:{ports['exo']}"
    assert lab_json["onprem_exchange"]["url"] == f"https://127.0.0.1:{ports['winrm-https']}/wsman"
    every_endpoint_answers(lab_json)


def test_the_printed_toml_is_the_written_file_and_holds_no_secret(
    lab_up: subprocess.CompletedProcess[str], lab_json: dict[str, Any]
) -> None:
    lab_dir = Path(lab_json["dir"])
    toml_text = (lab_dir / "homebound.toml").read_text()
    settings = tomllib.loads(toml_text)
    assert settings == {k: v for k, v in lab_json.items() if k in settings}
    assert list(settings) == ["amqp", "exchange_online", "active_directory", "onprem_exchange",
                              "gateway", "dns", "lab"]
    assert settings["onprem_exchange"]["username"] == "LAB\\hbadmin"
    assert settings["gateway"] == {"host": "mail.fabrikam.example", "addresses": ["192.0.2.25"]}
    for secret in secrets_of(lab_dir):
        assert secret not in toml_text
        assert secret not in lab_up.stdout
        assert secret not in lab_up.stderr
    for path in (lab_dir / "secrets").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert (lab_dir / "secrets").stat().st_mode & 0o777 == 0o700


def test_lab_up_twice_is_harmless_and_keeps_the_same_servers(
    lab_json: dict[str, Any], ports: dict[str, int]
) -> None:
    again = succeeded(lab_cli("up", "--dir", lab_json["dir"], "--json", *up_arguments(ports)))
    second = json.loads(again.stdout)
    assert second["pids"] == lab_json["pids"]
    assert second["exchange_online"] == lab_json["exchange_online"]
    toml_again = succeeded(lab_cli("up", "--dir", lab_json["dir"])).stdout
    assert tomllib.loads(toml_again)["dns"]["port"] == ports["dns"]


def test_lab_status_reports_each_component_running_and_healthy(lab_json: dict[str, Any]) -> None:
    status = json.loads(succeeded(lab_cli("status", "--dir", lab_json["dir"], "--json")).stdout)
    assert set(status) == {"samba", "named", "exo", "onprem"}
    for name, component in status.items():
        assert component["running"], name
        assert component["pid"] == lab_json["pids"][name]
        assert component["health"] == "ok", name
    table = succeeded(lab_cli("status", "--dir", lab_json["dir"])).stdout
    assert "named" in table and "ok" in table


def test_lab_seed_adds_mailboxes_to_the_running_tenant(lab_json: dict[str, Any]) -> None:
    health_url = f"{lab_json['lab']['exo_control_url']}/health"
    ca_file = lab_json["exchange_online"]["ca_file"]
    before = health(health_url, ca_file).json()["recipients"]
    reply = json.loads(succeeded(lab_cli("seed", "--dir", lab_json["dir"], "--mailboxes", "7")).stdout)
    assert reply["added"] == 7
    assert health(health_url, ca_file).json()["recipients"] == before + 7


def test_lab_seed_adds_the_mailboxes_of_a_csv_file(
    lab_json: dict[str, Any], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    csv_file = tmp_path / "tenant.csv"
    csv_file.write_text(
        "DisplayName,Alias\n"
        f"CSV Person {tag},csv-{tag}-1\n"
        f"\"x'; Remove-Mailbox -Identity * # {tag}\",csv-{tag}-2\n"
    )
    done = succeeded(lab_cli("seed", "--dir", lab_json["dir"], "--mailboxes-csv", str(csv_file)))
    reply = json.loads(done.stdout)
    assert reply["added"] == 2
    assert sorted(a.split("@")[0] for a in reply["addresses"]) == [f"csv-{tag}-1", f"csv-{tag}-2"]


def test_lab_seed_needs_a_count_or_a_csv() -> None:
    done = lab_cli("seed", "--dir", str(lab_dir_for_tests()))
    assert done.returncode == 2
    assert "--mailboxes" in done.stderr


def test_lab_down_keeping_samba_stops_the_rest_and_frees_their_ports(
    lab_json: dict[str, Any], samba: SambaDC, ports: dict[str, int]
) -> None:
    down = succeeded(lab_cli("down", "--dir", lab_json["dir"], "--keep-samba"))
    stopped = {name for name in ("named", "exo", "onprem") if f"stopped {name}" in down.stdout}
    assert stopped == {"named", "exo", "onprem"}
    assert gone([lab_json["pids"][name] for name in stopped]) == []
    assert all(port_is_free("127.0.0.1", port) for port in ports.values())
    assert port_is_free("127.0.0.1", ports["dns"], udp=True)
    with samba.connect():  # the session's Samba still serves the other tests
        pass
    status = json.loads(lab_cli("status", "--dir", lab_json["dir"], "--json").stdout)
    assert [name for name, s in status.items() if s["running"]] == ["samba"]


# ---------------------------------------------------------------------- a fresh, isolated lab

def test_a_fresh_lab_comes_up_within_a_minute_and_goes_down_completely(tmp_path: Path) -> None:
    """Runs the check below in a private network namespace: its own 127.0.0.1 and port 636."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare(1) and ip(8) for a private network namespace")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    env = {**os.environ, ISOLATED_DIR_VARIABLE: str(tmp_path / "lab")}
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
         sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s",
         f"{__file__}::test_inside_a_private_network_the_whole_lab_cycle"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "1 passed" in done.stdout
    print(*(line for line in done.stdout.splitlines() if line.startswith("lab up (fresh")))


@pytest.mark.skipif(ISOLATED_DIR_VARIABLE not in os.environ,
                    reason="run by the test above inside a private network namespace")
def test_inside_a_private_network_the_whole_lab_cycle() -> None:
    lab_dir = os.environ[ISOLATED_DIR_VARIABLE]
    started = time.monotonic()
    try:
        up = succeeded(lab_cli("up", "--dir", lab_dir, "--mailboxes", "50", "--json", "--fresh"))
        up_seconds = time.monotonic() - started
        settings = json.loads(up.stdout)
        every_endpoint_answers(settings)
        assert up_seconds < 60
    finally:
        started = time.monotonic()
        down = succeeded(lab_cli("down", "--dir", lab_dir))
        down_seconds = time.monotonic() - started
    pids = [pid for pid in settings["pids"].values() if pid is not None]
    assert len(pids) == 4
    assert all(f"(pid {pid})" in down.stdout for pid in pids)
    assert gone(pids) == []
    assert processes_naming(lab_dir) == []  # winbindd, which Samba starts in its own session
    assert [port for port in DEFAULT_PORTS if not port_is_free("127.0.0.1", port)] == []
    assert port_is_free("127.0.0.1", 5353, udp=True)
    print(f"lab up (fresh, 50 mailboxes): {up_seconds:.1f} s; lab down: {down_seconds:.1f} s")


def test_lab_up_without_samba_or_bind_says_what_to_install(tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "lab", "up", "--dir", str(tmp_path / "lab")], cwd=REPO,
        env={**os.environ, "PATH": str(empty_bin)}, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "apt-get install -y samba ldb-tools winbind bind9 bind9-utils" in message
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "lab" / "run").exists()
