"""The migration monitor against the Exchange Online stand-in and the real RabbitMQ."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contracts.envelope import new_event
from contracts.events import (
    Completion,
    CompletionPolicy,
    MoveMode,
    WaveCompletionRequested,
    WaveCompletionRequestedData,
)
from contracts.topology import queues_for
from events.admin import BrokerAdmin
from events.amqp import AmqpSettings
from events.replay import Selection, list_dead_letters, replay
from tests.agents.harness import config_for, running_agent
from tests.agents.monitor_lab import MovingTenant, Sampler, moving_tenant, wait_for, wave_events

MONITOR = "migration-monitor"


def of_type(seen: list[dict[str, Any]], type_name: str) -> list[dict[str, Any]]:
    return [e for e in seen if e["type"] == type_name]


@pytest.fixture
def tenant(tmp_path: Path) -> Iterator[MovingTenant]:
    with moving_tenant(tmp_path / "exo", mailboxes=14, max_concurrent=3) as running:
        yield running


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away database on the local PostgreSQL (trust authentication)."""
    name = f"hb_ledger_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc}); .ci/run starts it")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.parametrize("ledger", ["sqlite", "postgresql"])
def test_a_wave_moves_every_mailbox_without_exceeding_the_endpoint_limit(
    broker: AmqpSettings,
    tenant: MovingTenant,
    tmp_path: Path,
    ledger: str,
    request: pytest.FixtureRequest,
) -> None:
    ledger_url = request.getfixturevalue("postgres_url") if ledger == "postgresql" else None
    mailboxes = tenant.user_mailboxes(10)
    config = config_for(broker, tmp_path / "state", **tenant.sections(batch_size=2, ledger_url=ledger_url))
    with running_agent(MONITOR, config, broker) as agent, Sampler(tenant) as sampler:
        agent.publisher.publish_events(wave_events("w-pace", mailboxes, max_concurrent=3))
        seen = agent.spy.collect(lambda s: of_type(s, "wave.migrated"), timeout=90)
    completed = {e["data"]["primary_smtp_address"] for e in of_type(seen, "mailbox.completed")}
    assert completed == {m.primary_smtp_address for m in mailboxes}
    assert 0 < sampler.peak <= 3  # never more moves in Exchange than the endpoint allows
    [migrated] = of_type(seen, "wave.migrated")
    assert migrated["data"] == {"completed": 10, "failed": 0, "partial": False}
    requested = of_type(seen, "mailbox.move_requested")
    assert len({e["mailbox_id"] for e in requested}) == 10
    assert {e["data"]["batch_name"] for e in requested} >= {"homebound-w-pace-001"}
    for mailbox in mailboxes:  # states only ever move forward, in order
        order = [
            e["type"]
            for e in seen
            if e.get("mailbox_id") == str(mailbox.exchange_guid) and e["producer"] == MONITOR
        ]
        assert order[0] == "mailbox.move_requested" and order[-1] == "mailbox.completed"
        assert "mailbox.failed" not in order
    statuses = tenant.migration_users()
    assert all(statuses[m.primary_smtp_address.lower()] == "Completed" for m in mailboxes)


def test_a_permanent_move_failure_is_dead_lettered_classified_and_replayed_once_fixed(
    broker: AmqpSettings,
    tenant: MovingTenant,
    tmp_path: Path,
) -> None:
    mailboxes = tenant.user_mailboxes(4)
    broken = mailboxes[1].primary_smtp_address
    tenant.fault(broken, "missing-guid")
    config = config_for(broker, tmp_path / "state", **tenant.sections())
    with running_agent(MONITOR, config, broker) as agent:
        agent.publisher.publish_events(wave_events("w-fail", mailboxes))
        seen = agent.spy.collect(lambda s: of_type(s, "wave.migrated"), timeout=90)
        [failed] = of_type(seen, "mailbox.failed")
        assert failed["data"]["primary_smtp_address"] == broken
        assert failed["data"]["error_class"] == "permanent"
        assert failed["data"]["step"] == "move"
        assert "Cannot find a recipient that has mailbox GUID" in failed["data"]["reason"]
        assert "ExchangeGuid" in failed["data"]["remediation"]
        assert of_type(seen, "wave.migrated")[0]["data"] == {"completed": 3, "failed": 1, "partial": True}
        [letter] = wait_for(lambda: list_dead_letters(broker, [MONITOR]))
        assert letter.address == broken and letter.event_type == "mailbox.mail_enabled"

        tenant.fault(broken, None)  # the cause is fixed
        replay(broker, [MONITOR], Selection(mailbox=broken))
        later = agent.spy.collect(
            lambda s: [e for e in of_type(s, "wave.migrated") if e["data"]["failed"] == 0], timeout=90
        )
    assert [e["data"]["primary_smtp_address"] for e in of_type(later, "mailbox.completed")] == [broken]
    assert tenant.migration_users()[broken.lower()] == "Completed"
    assert list_dead_letters(broker, [MONITOR]) == []


def test_mrsproxy_refusals_are_waited_out_and_the_move_completes(
    broker: AmqpSettings,
    tenant: MovingTenant,
    tmp_path: Path,
) -> None:
    mailboxes = tenant.user_mailboxes(2)
    tenant.fault(mailboxes[0].primary_smtp_address, "mrsproxy-limit:3")
    config = config_for(broker, tmp_path / "state", **tenant.sections())
    with running_agent(MONITOR, config, broker) as agent:
        agent.publisher.publish_events(wave_events("w-limit", mailboxes))
        seen = agent.spy.collect(lambda s: of_type(s, "wave.migrated"), timeout=90)
    assert of_type(seen, "wave.migrated")[0]["data"]["completed"] == 2
    assert of_type(seen, "mailbox.failed") == []


def test_manual_completion_waits_at_synced_until_asked_then_completes_one_mailbox(
    broker: AmqpSettings,
    tenant: MovingTenant,
    tmp_path: Path,
) -> None:
    mailboxes = tenant.user_mailboxes(3)
    config = config_for(broker, tmp_path / "state", **tenant.sections())
    manual = Completion(policy=CompletionPolicy.MANUAL)
    with running_agent(MONITOR, config, broker) as agent:
        agent.publisher.publish_events(wave_events("w-manual", mailboxes, completion=manual))
        seen = agent.spy.collect(lambda s: len(of_type(s, "mailbox.synced")) == 3, timeout=60)
        assert of_type(seen, "mailbox.completed") == []
        first = mailboxes[0].primary_smtp_address
        agent.publisher.publish_events(
            [
                new_event(
                    WaveCompletionRequested,
                    wave_id="w-manual",
                    producer="cli",
                    data=WaveCompletionRequestedData(mailboxes=[first]),
                )
            ]
        )
        seen += agent.spy.collect(lambda s: of_type(s, "mailbox.completed"), timeout=60)
        assert [e["data"]["primary_smtp_address"] for e in of_type(seen, "mailbox.completed")] == [first]
        agent.publisher.publish_events(
            [
                new_event(
                    WaveCompletionRequested,
                    wave_id="w-manual",
                    producer="cli",
                    data=WaveCompletionRequestedData(),
                )
            ]
        )
        seen += agent.spy.collect(lambda s: of_type(s, "wave.migrated"), timeout=60)
    assert len(of_type(seen, "mailbox.completing")) == 3
    assert of_type(seen, "wave.migrated")[0]["data"]["completed"] == 3


def test_move_requests_mode_moves_each_mailbox_with_new_moverequest(
    broker: AmqpSettings,
    tenant: MovingTenant,
    tmp_path: Path,
) -> None:
    mailboxes = tenant.user_mailboxes(3)
    config = config_for(broker, tmp_path / "state", **tenant.sections())
    with running_agent(MONITOR, config, broker) as agent:
        agent.publisher.publish_events(wave_events("w-mr", mailboxes, move_mode=MoveMode.MOVE_REQUEST))
        seen = agent.spy.collect(lambda s: of_type(s, "wave.migrated"), timeout=90)
    assert of_type(seen, "wave.migrated")[0]["data"]["completed"] == 3
    requests = tenant.client.invoke("Get-MoveRequest", {"ResultSize": "Unlimited"})
    assert {r["Status"] for r in requests} == {"Completed"}
    assert len(requests) == 3


def test_two_monitor_replicas_never_both_consume(
    broker: AmqpSettings, tenant: MovingTenant, tmp_path: Path
) -> None:
    config = config_for(broker, tmp_path / "state", **tenant.sections())
    work_queue = queues_for(MONITOR).work

    def two_consumers() -> list[dict[str, Any]] | None:
        details = admin.queue(broker.vhost, work_queue).get("consumer_details", [])
        return details if len(details) == 2 else None

    with (
        running_agent(MONITOR, config, broker),
        running_agent(MONITOR, config, broker),
        BrokerAdmin() as admin,
    ):
        details = wait_for(two_consumers, timeout=30)
    assert sorted(c["activity_status"] for c in details) == ["single_active", "waiting"]
