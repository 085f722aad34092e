"""Event models: strict validation at the edge, derived ids, generated documents in sync."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts import parse_event
from contracts.envelope import follow, new_event
from contracts.events import (
    EVENT_MODELS,
    CloudMailbox,
    MailboxDiscovered,
    MailboxProvisioned,
    UnknownEventType,
    WaveRequested,
    WaveRequestedData,
)
from tests.events.broker import discovered

REPO = Path(__file__).resolve().parents[2]


def test_every_architecture_event_has_a_model() -> None:
    required = {
        "wave.requested", "wave.cloud_ready", "wave.onprem_ready", "wave.dns_prepared", "wave.exported",
        "wave.migrated", "wave.cutover_done", "wave.failed", "mailbox.discovered", "mailbox.provisioned",
        "mailbox.mail_enabled", "mailbox.move_requested", "mailbox.syncing", "mailbox.synced",
        "mailbox.completed", "mailbox.failed", "mailbox.replayed",
    }
    assert required <= set(EVENT_MODELS)


def test_an_event_round_trips_through_json() -> None:
    event = discovered(3)
    again = parse_event(event.to_json())
    assert again == event
    assert isinstance(again, MailboxDiscovered)
    assert again.data.primary_smtp_address == "user3@fabrikam.example"


@pytest.mark.parametrize(("path", "value", "message"), [
    (("data", "primary_smtp_address"), "no-at-sign", "not an SMTP address"),
    (("data", "exchange_guid"), "not-a-guid", "not a GUID"),
    (("data", "display_name"), "x" * 257, "at most 256"),
    (("data", "alias"), "has space", "should match pattern"),
    (("data", "email_addresses"), ["SMTP:bad address@x.example"], "not an SMTP address"),
    (("data", "colour"), "blue", "Extra inputs are not permitted"),
    (("surprise",), 1, "Extra inputs are not permitted"),
    (("occurred_at",), "2026-12-04T10:00:00", "timezone"),
])
def test_invalid_fields_are_rejected(path: tuple[str, ...], value: object, message: str) -> None:
    document = json.loads(discovered().to_json())
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError, match=message):
        parse_event(document)


def test_a_mailbox_event_without_a_mailbox_id_is_rejected() -> None:
    document = json.loads(discovered().to_json())
    document["mailbox_id"] = None
    with pytest.raises(ValidationError, match="must carry a mailbox_id"):
        parse_event(document)


def test_an_unknown_type_is_named() -> None:
    with pytest.raises(UnknownEventType, match=r"mailbox\.teleported"):
        parse_event({"type": "mailbox.teleported"})


def test_the_primary_address_must_be_one_of_the_proxies() -> None:
    data = json.loads(discovered().to_json())["data"]
    data["email_addresses"] = ["SMTP:someone-else@fabrikam.example"]
    with pytest.raises(ValidationError, match="primary_smtp_address is not among"):
        CloudMailbox.model_validate(data)


def test_hostile_display_names_are_just_strings() -> None:
    data = json.loads(discovered().to_json())["data"]
    data["display_name"] = "x'; Remove-Mailbox -Identity * # )(cn=*) $(calc) `whoami`"
    assert CloudMailbox.model_validate(data).display_name == data["display_name"]


def test_follow_up_ids_are_derived_so_a_rerun_publishes_the_same_ids() -> None:
    cause = discovered()
    first = follow(cause, MailboxProvisioned, producer="ad-provisioner", data=_provisioned(cause))
    again = follow(cause, MailboxProvisioned, producer="ad-provisioner", data=_provisioned(cause))
    assert first.event_id == again.event_id
    assert first.causation_id == cause.event_id
    assert first.correlation_id == cause.correlation_id
    assert first.mailbox_id == cause.mailbox_id
    other = follow(discovered(), MailboxProvisioned, producer="ad-provisioner", data=_provisioned(cause))
    assert other.event_id != first.event_id


def test_a_new_chain_correlates_to_itself() -> None:
    event = new_event(WaveRequested, wave_id="w-1", producer="cli",
                      data=WaveRequestedData(domains=["fabrikam.example"]))
    assert event.correlation_id == event.event_id
    assert event.causation_id is None


def _provisioned(cause: MailboxDiscovered):  # type: ignore[no-untyped-def]
    from contracts.events import AdAccount, MailboxProvisionedData

    return MailboxProvisionedData(mailbox=cause.data, account=AdAccount(
        distinguished_name="CN=x,OU=y,DC=lab,DC=example", object_guid=uuid.uuid4(),
        sam_account_name="x", created=True))


def test_the_committed_contract_documents_match_the_code() -> None:
    done = subprocess.run([sys.executable, "-m", "agents", "contracts", "export", "--check"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_drift_check_names_a_changed_file(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "agents", "contracts", "export", "--root", str(tmp_path)],
                   check=True, capture_output=True)
    (tmp_path / "contracts" / "schema" / "wave.requested.json").write_text("{}\n")
    done = subprocess.run([sys.executable, "-m", "agents", "contracts", "export", "--check",
                           "--root", str(tmp_path)], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "contracts/schema/wave.requested.json" in done.stderr
