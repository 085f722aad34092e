"""The DNS cutover agent against a real BIND9 (signed RFC 2136 updates) and the real RabbitMQ.

Each test gets its own zone, shaped as an Exchange Online customer's (MX to
`<domain>.mail.protection.outlook.com`, SPF including Exchange Online,
autodiscover CNAME to `autodiscover.outlook.com`, TTL 3600), on one named per
module. What the agent did is checked by asking BIND, not by trusting the
agent's events.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from agents.cli import main as homebound
from agents.dns_cutover.adapters import TsigDnsServer
from agents.dns_cutover.plan import Targets, prepare
from agents.dns_cutover.ports import DnsConflict, DnsRejected
from agents.runtime.config import HomeboundConfig
from contracts.envelope import new_event
from contracts.events import (
    WaveCutoverDoneData,
    WaveDnsPreparedData,
    WaveMigrated,
    WaveMigratedData,
    WaveRequested,
    WaveRequestedData,
)
from contracts.topology import queues_for
from events.amqp import AmqpSettings
from lab.bind import BindServer, exchange_online_mx
from lab.ports import free_port
from lab.settings_toml import render_toml
from tests.agents.harness import RunningAgent, config_for, running_agent
from tests.events.broker import wait_for_messages

pytestmark = pytest.mark.lab

GATEWAY_ADDRESS = "192.0.2.25"  # the lab zones' mail.<domain> A record
EXO_SPF = "v=spf1 include:spf.protection.outlook.com -all"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindServer]:
    if shutil.which("named") is None:
        pytest.fail("BIND9 is not installed: run `apt-get install -y bind9 bind9-utils`")
    server = BindServer(tmp_path_factory.mktemp("dns-cutover-bind"), port=free_port(udp=True))
    server.ensure_running()
    yield server
    server.stop()


@pytest.fixture
def zone(bind: BindServer) -> str:
    """A fresh zone, just as Exchange Online customers have theirs."""
    name = f"t{uuid.uuid4().hex[:10]}.example"
    bind.add_zone(name)
    return name


def _config(broker: AmqpSettings, state_dir: Path, bind: BindServer, zone: str,
            **dns: Any) -> HomeboundConfig:
    settings = bind.settings
    return config_for(
        broker, state_dir,
        dns={"server": settings.server, "port": settings.port, "tsig_key_name": settings.key_name,
             "tsig_secret": settings.secret(), "timeout_seconds": 2, **dns},
        gateway={"host": f"mail.{zone}", "addresses": [GATEWAY_ADDRESS]},
    )


@pytest.fixture
def agent(broker: AmqpSettings, tmp_path: Path, bind: BindServer, zone: str) -> Iterator[RunningAgent]:
    # BIND itself doubles as a resolver to verify on: the resolver path is exercised too
    config = _config(broker, tmp_path / "state", bind, zone, verify_resolvers=[f"127.0.0.1:{bind.port}"])
    with running_agent("dns-cutover", config, broker) as running:
        yield running


# --------------------------------------------------------------------------- helpers


def _requested(zone: str, wave: str, *, also: tuple[str, ...] = (),
               allow_partial: bool = False) -> WaveRequested:
    return new_event(WaveRequested, wave_id=wave, producer="test", data=WaveRequestedData(
        domains=[zone, *also], allow_partial_cutover=allow_partial))


def _migrated(wave: str, *, completed: int = 5, failed: int = 0) -> WaveMigrated:
    return new_event(WaveMigrated, wave_id=wave, producer="test",
                     data=WaveMigratedData(completed=completed, failed=failed))


def _answer(bind: BindServer, name: str, rdtype: str) -> tuple[int | None, list[str]]:
    response = bind.query(name, rdtype)
    rrsets = [r for r in response.answer if r.rdtype == dns.rdatatype.from_text(rdtype)]
    if not rrsets:
        return None, []
    return rrsets[0].ttl, sorted(rdata.to_text() for rdata in rrsets[0])


def _serial(bind: BindServer, zone: str) -> int:
    return int(_answer(bind, zone, "SOA")[1][0].split()[2])


def _await(agent: RunningAgent, event_type: str) -> list[dict[str, Any]]:
    """What was published since the last wait, up to the first *event_type*."""
    return agent.spy.collect(lambda seen: event_type in _types(seen), timeout=30)


def _last(seen: list[dict[str, Any]], event_type: str) -> dict[str, Any]:
    return [event for event in seen if event["type"] == event_type][-1]


def _types(seen: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in seen]


def _prepare(agent: RunningAgent, zone: str, wave: str, **kwargs: Any) -> WaveDnsPreparedData:
    agent.publisher.publish_events([_requested(zone, wave, **kwargs)])
    prepared = _last(_await(agent, "wave.dns_prepared"), "wave.dns_prepared")
    return WaveDnsPreparedData.model_validate(prepared["data"])


def _original_records(zone: str) -> dict[str, tuple[int | None, list[str]]]:
    return {"MX": (3600, [f"0 {exchange_online_mx(zone)}"]), "TXT": (3600, [f'"{EXO_SPF}"']),
            "CNAME": (3600, ["autodiscover.outlook.com."])}


def _records(bind: BindServer, zone: str) -> dict[str, tuple[int | None, list[str]]]:
    return {"MX": _answer(bind, zone, "MX"), "TXT": _answer(bind, zone, "TXT"),
            "CNAME": _answer(bind, f"autodiscover.{zone}", "CNAME")}


def _signed_replace(bind: BindServer, zone: str, rdtype: str, *records: str, ttl: int = 3600) -> None:
    settings = bind.settings
    update = dns.update.UpdateMessage(zone, keyring=dns.tsigkeyring.from_text(
        {settings.key_name: settings.secret()}), keyalgorithm=dns.tsig.HMAC_SHA256)
    update.replace("@", ttl, rdtype, *records)
    assert dns.query.tcp(update, settings.server, port=settings.port, timeout=5).rcode() == dns.rcode.NOERROR


# --------------------------------------------------------------------------- preparation


def test_a_requested_wave_gets_the_gateway_in_spf_and_a_low_mx_ttl(
    agent: RunningAgent, bind: BindServer, zone: str
) -> None:
    prepared = _prepare(agent, zone, "w-prepare")

    assert _answer(bind, zone, "TXT") == (3600, [f'"v=spf1 ip4:{GATEWAY_ADDRESS} {EXO_SPF[7:]}"'])
    assert _answer(bind, zone, "MX") == (300, [f"0 {exchange_online_mx(zone)}"])
    assert prepared.domain == zone
    assert (prepared.before.spf, prepared.before.mx_ttl) == (EXO_SPF, 3600)
    assert prepared.after.spf == f"v=spf1 ip4:{GATEWAY_ADDRESS} include:spf.protection.outlook.com -all"
    assert prepared.after.mx_ttl == 300
    assert prepared.after.mx == prepared.before.mx
    assert any("MX TTL lowered from 3600 to 300" in change for change in prepared.changes)


def test_a_repeated_request_changes_nothing_and_keeps_the_original_before_state(
    agent: RunningAgent, bind: BindServer, zone: str
) -> None:
    first = _prepare(agent, zone, "w-repeat")
    serial = _serial(bind, zone)

    agent.publisher.publish_events([_requested(zone, "w-repeat")])  # a new event id: not deduplicated
    again = WaveDnsPreparedData.model_validate(
        _last(_await(agent, "wave.dns_prepared"), "wave.dns_prepared")["data"])

    assert _serial(bind, zone) == serial  # no update reached the zone
    assert again.changes == []
    assert again.before == first.before and again.before.spf == EXO_SPF
    assert again.after == first.after


def test_an_spf_that_cannot_take_exchange_online_within_ten_lookups_is_refused_untouched(
    agent: RunningAgent, bind: BindServer, broker: AmqpSettings, zone: str
) -> None:
    crowded = _crowded_spf()
    _signed_replace(bind, zone, "TXT", f'"{crowded}"')
    agent.publisher.publish_events([_requested(zone, "w-crowded")])

    failed = _last(_await(agent, "wave.failed"), "wave.failed")["data"]
    assert failed["error_class"] == "permanent"
    assert "11 DNS lookups, more than the 10" in failed["reason"]
    assert "include:spf.protection.outlook.com" in failed["reason"]
    assert "homebound dlq replay --wave w-crowded" in failed["remediation"]
    letters = wait_for_messages(broker, queues_for("dns-cutover").dead_letter, 1)
    assert json.loads(letters[0][1])["type"] == "wave.requested"
    assert _answer(bind, zone, "TXT") == (3600, [f'"{crowded}"'])
    assert _answer(bind, zone, "MX")[0] == 3600  # all or nothing: the MX TTL was not lowered either


def _crowded_spf() -> str:
    """Ten lookups already, none of them Exchange Online's: adding it would make eleven."""
    return "v=spf1 a mx " + " ".join(f"include:s{i}.example" for i in range(8)) + " -all"


def test_a_wave_of_two_domains_is_announced_once_with_the_changes_of_both(
    agent: RunningAgent, bind: BindServer, zone: str
) -> None:
    second = f"t{uuid.uuid4().hex[:10]}.example"
    bind.add_zone(second)
    prepared = _prepare(agent, zone, "w-two", also=(second,))

    assert prepared.domain == zone
    assert {change.split(":")[0] for change in prepared.changes} == {zone, second}
    for name in (zone, second):
        assert _answer(bind, name, "TXT")[1] == [f'"v=spf1 ip4:{GATEWAY_ADDRESS} {EXO_SPF[7:]}"']


def test_a_refused_domain_leaves_the_rest_of_its_wave_untouched(
    agent: RunningAgent, bind: BindServer, zone: str
) -> None:
    second = f"t{uuid.uuid4().hex[:10]}.example"
    bind.add_zone(second)
    _signed_replace(bind, second, "TXT", f'"{_crowded_spf()}"')
    agent.publisher.publish_events([_requested(zone, "w-two-refused", also=(second,))])

    assert _last(_await(agent, "wave.failed"), "wave.failed")["data"]["error_class"] == "permanent"
    assert _records(bind, zone) == _original_records(zone)


# --------------------------------------------------------------------------- cutover


def test_a_fully_migrated_wave_moves_mx_and_autodiscover_on_prem_and_restores_the_ttl(
    agent: RunningAgent, bind: BindServer, zone: str
) -> None:
    prepared = _prepare(agent, zone, "w-cutover")
    agent.publisher.publish_events([_migrated("w-cutover")])
    seen = _await(agent, "wave.cutover_done")

    assert _types(seen).index("wave.cutover_started") < _types(seen).index("wave.cutover_done")
    assert _answer(bind, zone, "MX") == (3600, [f"0 mail.{zone}."])
    assert _answer(bind, f"autodiscover.{zone}", "CNAME") == (3600, [f"mail.{zone}."])
    assert _answer(bind, zone, "TXT")[1] == [f'"{prepared.after.spf}"']
    started = _last(seen, "wave.cutover_started")["data"]
    assert started == {"domain": zone, "mx_target": f"mail.{zone}"}
    done = WaveCutoverDoneData.model_validate(_last(seen, "wave.cutover_done")["data"])
    assert done.before.mx == [(0, exchange_online_mx(zone).rstrip("."))]
    assert (done.after.mx, done.after.mx_ttl, done.partial) == ([(0, f"mail.{zone}")], 3600, False)


def test_a_wave_with_failed_mailboxes_is_not_cut_over_without_allow_partial(
    agent: RunningAgent, bind: BindServer, broker: AmqpSettings, zone: str
) -> None:
    _prepare(agent, zone, "w-partial")
    agent.publisher.publish_events([_migrated("w-partial", completed=4, failed=1)])
    seen = _await(agent, "wave.failed")

    failed = _last(seen, "wave.failed")["data"]
    assert (failed["error_class"], failed["step"]) == ("needs-human", "cutover")
    assert "wave not fully migrated: 1 failed" in failed["reason"]
    assert "wave.cutover_started" not in _types(seen)
    letters = wait_for_messages(broker, queues_for("dns-cutover").dead_letter, 1)
    assert json.loads(letters[0][1])["type"] == "wave.migrated"  # replayable once fixed
    assert _answer(bind, zone, "MX") == (300, [f"0 {exchange_online_mx(zone)}"])


def test_allow_partial_cuts_over_a_wave_with_failures_and_says_so(
    agent: RunningAgent, bind: BindServer, zone: str
) -> None:
    _prepare(agent, zone, "w-allowed", allow_partial=True)
    agent.publisher.publish_events([_migrated("w-allowed", completed=4, failed=1)])
    done = _last(_await(agent, "wave.cutover_done"), "wave.cutover_done")["data"]

    assert done["partial"] is True
    assert _answer(bind, zone, "MX") == (3600, [f"0 mail.{zone}."])


def test_a_resolver_that_never_sees_the_new_mx_fails_the_cutover_after_the_bounded_wait(
    broker: AmqpSettings, tmp_path: Path, bind: BindServer, zone: str
) -> None:
    silent = f"127.0.0.1:{free_port(udp=True)}"  # nothing answers there
    config = _config(broker, tmp_path / "state", bind, zone, verify_resolvers=[silent],
                     verify_timeout_seconds=0.5, timeout_seconds=0.2)
    with running_agent("dns-cutover", config, broker) as lagging:
        _prepare(lagging, zone, "w-lagging")
        lagging.publisher.publish_events([_migrated("w-lagging")])
        failed = _last(_await(lagging, "wave.failed"), "wave.failed")["data"]

    assert failed["error_class"] == "transient"
    assert "not every resolver answers the new MX" in failed["reason"] and silent in failed["reason"]
    assert _answer(bind, zone, "MX") == (300, [f"0 mail.{zone}."])  # switched; TTL kept low to go back fast


# --------------------------------------------------------------------------- rollback and the CLI


def test_dns_rollback_restores_exactly_the_records_from_before_the_wave(
    agent: RunningAgent, bind: BindServer, broker: AmqpSettings, zone: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _records(bind, zone) == _original_records(zone)
    _prepare(agent, zone, "w-rollback")
    agent.publisher.publish_events([_migrated("w-rollback")])
    _await(agent, "wave.cutover_done")
    assert _answer(bind, zone, "MX")[1] == [f"0 mail.{zone}."]

    toml = tmp_path / "homebound.toml"
    settings = bind.settings
    toml.write_text(render_toml({
        "amqp": {"url": broker.url},
        "dns": {"server": settings.server, "port": settings.port, "tsig_key_name": settings.key_name,
                "tsig_secret_file": str(settings.secret_file)},
        "gateway": {"host": f"mail.{zone}", "addresses": [GATEWAY_ADDRESS]},
    }))
    done = subprocess.run(
        [sys.executable, "-m", "agents", "dns", "rollback", "--wave", "w-rollback", "--wait", "30"],
        env={**os.environ, "HOMEBOUND_CONFIG": str(toml)}, cwd=REPO,
        capture_output=True, text=True, timeout=90, check=False)

    assert done.returncode == 0, done.stderr
    assert f"MX (3600 s): 0 {exchange_online_mx(zone).rstrip('.')}" in done.stdout
    assert "SPF restored" in done.stdout
    assert _records(bind, zone) == _original_records(zone)

    assert homebound(["--config", str(toml), "dns", "show", "--domain", zone, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (shown["spf"], shown["spf_lookups"], shown["spf_problem"]) == (EXO_SPF, 1, None)
    assert shown["mx_ttl"] == 3600


def test_rollback_waits_in_vain_and_says_so_when_no_agent_answers(
    broker: AmqpSettings, tmp_path: Path, bind: BindServer, zone: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config(broker, tmp_path / "state", bind, zone)
    with running_agent("dns-cutover", config, broker):
        pass  # its queue exists; the agent is gone
    toml = tmp_path / "homebound.toml"
    toml.write_text(render_toml({"amqp": {"url": broker.url}}))
    assert homebound(["--config", str(toml), "dns", "rollback", "--wave", "w-nobody", "--wait", "1"]) == 1
    assert "no answer from the dns-cutover agent within 1 s" in capsys.readouterr().err


# --------------------------------------------------------------------------- the adapter itself


def test_an_update_made_against_stale_records_is_refused_and_clobbers_nothing(
    bind: BindServer, zone: str
) -> None:
    settings = bind.settings
    server = TsigDnsServer(server=settings.server, port=settings.port, key_name=settings.key_name,
                           algorithm=settings.algorithm, secret=settings.secret())
    targets = Targets(f"mail.{zone}", (GATEWAY_ADDRESS,), f"mail.{zone}", "spf.protection.outlook.com",
                      300, 3600)
    change = prepare(server.read(zone), targets)
    _signed_replace(bind, zone, "MX", "10 someone-else.example.")  # a colleague, meanwhile

    with pytest.raises(DnsConflict, match="records changed since they were read"):
        server.apply(change)
    assert _answer(bind, zone, "MX") == (3600, ["10 someone-else.example."])
    assert _answer(bind, zone, "TXT")[1] == [f'"{EXO_SPF}"']  # the SPF half was not applied either


def test_a_wrong_secret_is_reported_without_ever_showing_a_secret(bind: BindServer, zone: str) -> None:
    settings = bind.settings
    wrong = "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1sYWJzLWtleSE="
    server = TsigDnsServer(server=settings.server, port=settings.port, key_name=settings.key_name,
                           algorithm=settings.algorithm, secret=wrong)
    with pytest.raises(DnsRejected, match="does not match the server's") as caught:
        server.read(zone)
    for text in (str(caught.value), repr(server)):
        assert wrong not in text and settings.secret() not in text
