"""The DNS cutover agent: prepare before the moves, switch after them, restore on demand.

    wave.requested          -> SPF authorises the gateway, MX TTL lowered  -> wave.dns_prepared
    wave.migrated           -> MX and autodiscover on-prem, verified,
                               MX TTL raised again                         -> wave.cutover_started,
                                                                              wave.cutover_done
    wave.rollback_requested -> the records from before the wave            -> wave.rolled_back

A wave may name several domains; the wave's state machine counts each of
these events once, so one event per wave is published after every domain is
done: its `domain`, `before` and `after` are the first (primary) domain's and
its `changes` cover every domain. The other domains' before-states are in the
agent's state file, which rollback reads.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from agents.dns_cutover import plan
from agents.dns_cutover.plan import Targets
from agents.dns_cutover.ports import (
    DnsConflict,
    DnsError,
    DnsPort,
    DnsUnavailable,
    DomainChange,
    DomainRecords,
)
from agents.dns_cutover.spf import SpfError
from agents.dns_cutover.state import CutoverState, WavePlan
from contracts.envelope import Event
from contracts.events import (
    DnsRecordSet,
    WaveCutoverDone,
    WaveCutoverDoneData,
    WaveCutoverStarted,
    WaveCutoverStartedData,
    WaveDnsPrepared,
    WaveDnsPreparedData,
    WaveMigrated,
    WaveRequested,
    WaveRollbackRequested,
    WaveRolledBack,
    WaveRolledBackData,
)
from events.consumer import Context
from events.errors import NeedsHumanError, PermanentError, TransientError

__all__ = ["DnsCutover", "Outcome"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Outcome:
    """One domain after a step: the records before the wave, now, and what changed."""

    domain: str
    before: DnsRecordSet
    after: DnsRecordSet
    changes: tuple[str, ...]


class DnsCutover:
    def __init__(
        self, dns: DnsPort, state: CutoverState, targets: Targets, *,
        verify_resolvers: tuple[str, ...] = (), verify_timeout: float = 120.0,
        poll_interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._dns = dns
        self._state = state
        self._targets = targets
        self._resolvers = verify_resolvers
        self._verify_timeout = verify_timeout
        self._poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep  # handlers run on worker threads, never the connection's

    # ------------------------------------------------------------------ handlers
    # Each handler reads and plans every domain before it changes any, so a
    # refusal (an SPF over the limit, a missing before-state) leaves the whole
    # wave untouched rather than half done.

    def prepare(self, event: WaveRequested, context: Context) -> list[Event]:
        self._state.remember_wave(event.wave_id, event.data.domains, event.data.allow_partial_cutover)
        step = functools.partial(plan.prepare, targets=self._targets)
        started = time.perf_counter()
        with _classified(event.wave_id):
            planned = [self._read_and_remember(event.wave_id, domain) for domain in event.data.domains]
            changes = [(before, step(records)) for before, records in planned]
            outcomes = [self._carry_out(before, change, step) for before, change in changes]
        log.info("dns.prepared", domains=len(outcomes), seconds=round(time.perf_counter() - started, 3))
        first = outcomes[0]
        return [context.follow(WaveDnsPrepared, WaveDnsPreparedData(
            domain=first.domain, before=first.before, after=first.after, changes=_all_changes(outcomes)))]

    def cut_over(self, event: WaveMigrated, context: Context) -> list[Event]:
        wave = self._wave(event.wave_id)
        complete = event.data.failed == 0 and not event.data.partial
        if not complete and not wave.allow_partial:
            raise NeedsHumanError(
                f"wave not fully migrated: {event.data.failed} failed, {event.data.completed} completed; "
                "MX left pointing at Exchange Online",
                remediation="fix and complete the failed mailboxes, or re-request the wave with "
                            "--allow-partial, then `homebound dlq replay --wave "
                            f"{event.wave_id} --agent dns-cutover`")
        context.publish(context.follow(WaveCutoverStarted, WaveCutoverStartedData(
            domain=wave.primary, mx_target=self._targets.gateway_host)))
        switch = functools.partial(plan.cutover, targets=self._targets)
        started = time.perf_counter()
        with _classified(event.wave_id):
            planned = [self._read_and_remember(event.wave_id, domain) for domain in wave.domains]
            changes = [(before, switch(records)) for before, records in planned]
            for _, change in changes:  # the MX TTL stays low until verified: going back stays quick
                self._apply_and_verify(change, switch)
            for domain in wave.domains:
                self._wait_until_everyone_answers(domain)
            outcomes = [self._raise_ttl(before, change) for before, change in changes]
        log.info("dns.cut_over", domains=len(outcomes), seconds=round(time.perf_counter() - started, 3))
        first = outcomes[0]
        return [context.follow(WaveCutoverDone, WaveCutoverDoneData(
            domain=first.domain, before=first.before, after=first.after, partial=not complete))]

    def roll_back(self, event: WaveRollbackRequested, context: Context) -> list[Event]:
        wave = self._wave(event.wave_id)
        befores = [self._recorded_before(event.wave_id, domain) for domain in wave.domains]
        with _classified(event.wave_id):
            changes = [plan.rollback(self._dns.read(domain), before)
                       for domain, before in zip(wave.domains, befores, strict=True)]
            outcomes = [self._carry_out(before, change, functools.partial(plan.rollback, before=before))
                        for before, change in zip(befores, changes, strict=True)]
        log.info("dns.rolled_back", domains=len(outcomes))
        first = outcomes[0]
        return [context.follow(WaveRolledBack, WaveRolledBackData(
            domain=first.domain, restored=first.after, changes=_all_changes(outcomes)))]

    # ------------------------------------------------------------------ one domain

    def _read_and_remember(self, wave_id: str, domain: str) -> tuple[DnsRecordSet, DomainRecords]:
        """The domain's records now, and its before-state: recorded now unless kept already.

        Recorded before any change, so a crash right after an update cannot lose the original.
        """
        records = self._dns.read(domain)
        return self._state.remember_before(wave_id, domain, plan.record_set(records)), records

    def _carry_out(self, before: DnsRecordSet, change: DomainChange,
                   replan: Callable[[DomainRecords], DomainChange]) -> Outcome:
        after = self._apply_and_verify(change, replan)
        return Outcome(change.domain, before, plan.record_set(after), change.words)

    def _raise_ttl(self, before: DnsRecordSet, switch: DomainChange) -> Outcome:
        """The MX TTL back up once every resolver answers the new MX; the outcome tells both steps."""
        step = functools.partial(plan.restore_ttl, targets=self._targets)
        raise_ttl = step(self._dns.read(switch.domain))
        done = self._carry_out(before, raise_ttl, step)
        return Outcome(done.domain, before, done.after, switch.words + raise_ttl.words)

    def _recorded_before(self, wave_id: str, domain: str) -> DnsRecordSet:
        before = self._state.before(wave_id, domain)
        if before is None:
            raise PermanentError(f"no records of {domain} were recorded before wave {wave_id}: "
                                 "nothing to restore", remediation="restore the records by hand")
        return before

    # ------------------------------------------------------------------ helpers

    def _wave(self, wave_id: str) -> WavePlan:
        wave = self._state.wave(wave_id)
        if wave is None:
            raise PermanentError(
                f"dns-cutover has no record of wave {wave_id} (its wave.requested never reached "
                "this agent, or the state directory was lost)",
                remediation="re-request the wave (dns preparation is idempotent), then replay this event")
        return wave

    def _apply_and_verify(
        self, change: DomainChange, replan: Callable[[DomainRecords], DomainChange]
    ) -> DomainRecords:
        """Apply, read back, and plan again: anything left to do means the server did not take it."""
        self._dns.apply(change)
        now = self._dns.read(change.domain)
        left = replan(now)
        if not left.is_empty:
            raise DnsUnavailable(f"after the update the server still differs: {'; '.join(left.words)}")
        return now

    def _wait_until_everyone_answers(self, domain: str) -> None:
        """Poll the primary and every verify resolver until each answers the on-prem MX (bounded)."""
        wanted_mx = frozenset({(0, self._targets.gateway_host)})
        wanted_ad = self._targets.autodiscover_target
        waiting: list[str | None] = [None, *self._resolvers]
        deadline = self._clock() + self._verify_timeout
        while True:
            lagging: list[tuple[str | None, str]] = []
            for where in waiting:
                try:
                    seen = self._dns.observe(domain, where)
                except DnsError as exc:
                    lagging.append((where, exc.reason))
                    continue
                if seen.mx != wanted_mx or seen.autodiscover != wanted_ad:
                    old = ", ".join(f"{p} {h}" for p, h in sorted(seen.mx)) or "no MX"
                    lagging.append((where, f"{seen.where} still answers MX {old}"))
            if not lagging:
                return
            if self._clock() >= deadline:
                raise DnsUnavailable(f"{domain}: not every resolver answers the new MX after "
                                     f"{self._verify_timeout:g} s: " + "; ".join(r for _, r in lagging))
            waiting = [where for where, _ in lagging]
            self._sleep(self._poll_interval)


def _all_changes(outcomes: list[Outcome]) -> list[str]:
    return [change for outcome in outcomes for change in outcome.changes][:200]


@contextmanager
def _classified(wave_id: str) -> Iterator[None]:
    """The port's and the SPF checker's failures as the runtime's error classes."""
    try:
        yield
    except SpfError as exc:
        raise PermanentError(
            exc.reason, remediation=f"fix the SPF record by hand (one record, at most 10 lookups), "
                                    f"then `homebound dlq replay --wave {wave_id} --agent dns-cutover`",
        ) from None
    except (DnsUnavailable, DnsConflict) as exc:
        raise TransientError(exc.reason) from None
    except DnsError as exc:
        raise PermanentError(exc.reason, remediation="check the [dns] settings and the zone's "
                             "allow-update / update-policy for the TSIG key; `homebound config check "
                             "--connect` probes them") from None
