"""The mailbox and wave state machines: every allowed transition, and the refusals."""

from __future__ import annotations

import pytest

from contracts.states import (
    DUPLICATE,
    MAILBOX_TRANSITIONS,
    READINESS_EVENTS,
    WAVE_TRANSITIONS,
    Invalid,
    MailboxState,
    WavePhase,
    WaveStatus,
    advance_mailbox,
    advance_wave,
)

M = MailboxState
W = WavePhase


@pytest.mark.parametrize(("state", "event_type"), sorted(
    MAILBOX_TRANSITIONS, key=lambda k: (str(k[0]), k[1])))
def test_every_allowed_mailbox_transition_leads_where_the_table_says(
    state: MailboxState | None, event_type: str
) -> None:
    target = MAILBOX_TRANSITIONS[(state, event_type)]
    result = advance_mailbox(state, event_type, failed_from=M.MAIL_ENABLED)
    if isinstance(target, MailboxState):
        assert result is target
    else:  # a replay resumes where the mailbox was before the failed step
        assert result is M.MAIL_ENABLED


def test_the_happy_path_runs_from_discovered_to_completed() -> None:
    state = None
    for event_type in ("mailbox.discovered", "mailbox.provisioned", "mailbox.mail_enabled",
                       "mailbox.move_requested", "mailbox.syncing", "mailbox.syncing",
                       "mailbox.synced", "mailbox.completing", "mailbox.completed"):
        result = advance_mailbox(state, event_type)
        assert isinstance(result, MailboxState), (state, event_type, result)
        state = result
    assert state is M.COMPLETED


def test_failure_is_reachable_from_every_non_terminal_state_and_replay_resumes() -> None:
    for state in M:
        if state in (M.COMPLETED, M.FAILED):
            continue
        assert advance_mailbox(state, "mailbox.failed") is M.FAILED
    assert advance_mailbox(M.FAILED, "mailbox.replayed", failed_from=M.PROVISIONED) is M.PROVISIONED
    assert isinstance(advance_mailbox(M.FAILED, "mailbox.replayed"), Invalid)  # where to? unknown


@pytest.mark.parametrize(("state", "event_type"), [
    (M.PROVISIONED, "mailbox.provisioned"),  # redelivery
    (M.SYNCED, "mailbox.mail_enabled"),  # a late event overtaken by later ones
    (M.COMPLETED, "mailbox.synced"),
    (M.FAILED, "mailbox.failed"),
])
def test_repeats_and_late_events_are_duplicates(state: MailboxState, event_type: str) -> None:
    assert advance_mailbox(state, event_type) is DUPLICATE


@pytest.mark.parametrize(("state", "event_type"), [
    (M.COMPLETED, "mailbox.failed"),  # a finished mailbox cannot fail
    (M.DISCOVERED, "mailbox.replayed"),  # only a failed mailbox is replayed
    (M.FAILED, "mailbox.synced"),  # a failed mailbox moves only after a replay
    (None, "mailbox.completed"),  # nobody completes a mailbox never seen
    (M.DISCOVERED, "mailbox.syncing"),  # no move was ever requested
    (M.MAIL_ENABLED, "mailbox.completed"),
    (M.SYNCING, "wave.migrated"),  # not a mailbox event
])
def test_impossible_mailbox_events_are_invalid_with_a_reason(
    state: MailboxState | None, event_type: str
) -> None:
    result = advance_mailbox(state, event_type)
    assert isinstance(result, Invalid)
    assert event_type in result.reason


def _status(phase: WavePhase | None, readiness: frozenset[str] = frozenset()) -> WaveStatus | None:
    return None if phase is None else WaveStatus(phase, readiness)


@pytest.mark.parametrize(("phase", "event_type"), sorted(WAVE_TRANSITIONS, key=lambda k: (str(k[0]), k[1])))
def test_every_allowed_wave_transition_is_accepted(phase: WavePhase | None, event_type: str) -> None:
    result = advance_wave(_status(phase), event_type)
    assert isinstance(result, WaveStatus), (phase, event_type, result)


def test_a_wave_is_ready_only_once_all_three_sides_are_prepared_in_any_order() -> None:
    status = advance_wave(None, "wave.requested")
    assert isinstance(status, WaveStatus)
    for event_type in ("wave.dns_prepared", "wave.cloud_ready"):
        status = advance_wave(status, event_type)
        assert isinstance(status, WaveStatus) and status.phase is W.PREPARING
    assert advance_wave(status, "wave.cloud_ready") is DUPLICATE
    status = advance_wave(status, "wave.onprem_ready")
    assert isinstance(status, WaveStatus)
    assert status.phase is W.READY and status.readiness == READINESS_EVENTS
    for event_type, phase in (("mailbox.move_requested", W.MIGRATING), ("wave.migrated", W.MIGRATED),
                              ("wave.cutover_started", W.CUTOVER), ("wave.cutover_done", W.DONE)):
        status = advance_wave(status, event_type)
        assert isinstance(status, WaveStatus) and status.phase is phase
    assert advance_wave(status, "wave.requested") is DUPLICATE  # running it again changes nothing


@pytest.mark.parametrize(("phase", "event_type"), [
    (W.REQUESTED, "wave.migrated"),  # not prepared, nothing moved
    (W.PREPARING, "mailbox.move_requested"),  # moves wait for readiness
    (W.DONE, "wave.failed"),
    (None, "wave.cutover_done"),
    (W.MIGRATING, "wave.cutover_done"),  # MX switches only after the moves
])
def test_impossible_wave_events_are_invalid(phase: WavePhase | None, event_type: str) -> None:
    assert isinstance(advance_wave(_status(phase), event_type), Invalid)
