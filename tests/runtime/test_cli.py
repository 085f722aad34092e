"""The command line as a user meets it: help, version, plain errors, broker set-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from contracts.topology import AUDIT_STREAM, Agent, queues_for
from events.admin import BrokerAdmin
from events.amqp import AmqpSettings

REPO = Path(__file__).resolve().parents[2]


def homebound(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agents", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120, check=False)


def test_help_lists_every_command_and_version_answers() -> None:
    shown = homebound("--help")
    assert shown.returncode == 0
    for command in ("migrate", "complete", "status", "demo", "agent", "config", "contracts", "dlq",
                    "dns", "events", "rabbitmq", "lab"):
        assert f"    {command} " in shown.stdout, command
    assert homebound("--version").stdout.startswith("homebound ")


def test_bad_input_is_an_error_message_not_a_traceback(tmp_path: Path) -> None:
    missing = homebound("--config", str(tmp_path / "nope.toml"), "config", "check")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    csv = tmp_path / "wave.csv"
    csv.write_text("EmailAddress\nann@fabrikam.example\nnot-an-address\n")
    bad = homebound("migrate", "--domain", "fabrikam.example", "--mailboxes-csv", str(csv), cwd=tmp_path)
    assert bad.returncode == 2
    assert "line 3: 'not-an-address' is not an e-mail address" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = homebound("agent", "teleporter")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_rabbitmq_apply_declares_every_queue_and_sets_the_audit_retention(
    broker: AmqpSettings, tmp_path: Path
) -> None:
    done = homebound("rabbitmq", "apply", cwd=tmp_path,
                     env={"HOMEBOUND_AMQP_URL": broker.url, "HOMEBOUND_RUNTIME_AUDIT_RETENTION": "7D"})
    assert done.returncode == 0, done.stderr
    with BrokerAdmin() as admin:
        names = {q["name"] for q in admin.queues(broker.vhost)}
        policies = admin.policies(broker.vhost)
    assert AUDIT_STREAM in names
    for agent in Agent:
        assert {queues_for(agent.value).work, queues_for(agent.value).dead_letter} <= names
    [retention] = [p for p in policies if p["name"] == "homebound-audit-retention"]
    assert retention["definition"] == {"max-age": "7D"}
