"""What to change, computed from the records as read: pure, so it can be checked and repeated.

Each step is a function from the records to a `DomainChange`. Verifying is
planning again on what the server answers afterwards: an empty plan means
the server holds what the step wanted, and a handler run twice finds nothing
left to do (at-least-once delivery makes that the normal case).
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.dns_cutover import spf
from agents.dns_cutover.ports import DomainChange, DomainRecords, Rrset, RrsetEdit, autodiscover_name
from contracts.events import DnsRecordSet

__all__ = ["Targets", "cutover", "points_on_prem", "prepare", "record_set", "restore_ttl", "rollback"]

_WORDS_MAX = 256  # contracts.fields.ShortText


@dataclass(frozen=True)
class Targets:
    """Where mail goes after the cutover, and the TTLs around it (from [gateway] and [dns])."""

    gateway_host: str
    gateway_addresses: tuple[str, ...]
    autodiscover_target: str
    cloud_spf_include: str | None
    cutover_ttl: int
    restore_ttl: int


def record_set(records: DomainRecords) -> DnsRecordSet:
    """The records as the contracts carry them (the before/after of the events)."""
    spf_text = spf.select_spf(records.txt.texts)
    return DnsRecordSet(
        mx=records.mx_hosts, mx_ttl=records.mx.ttl,
        spf=spf_text, spf_ttl=records.txt.ttl if spf_text is not None else None,
        autodiscover=records.autodiscover_target,
        autodiscover_ttl=records.autodiscover.ttl if records.autodiscover.records else None,
    )


def points_on_prem(records: DomainRecords, targets: Targets) -> bool:
    return records.mx_hosts == [(0, targets.gateway_host)]


def prepare(records: DomainRecords, targets: Targets) -> DomainChange:
    """SPF authorising the gateway (and Exchange Online), MX TTL lowered: step 2 and 10's first half."""
    edits: list[RrsetEdit] = []
    words: list[str] = []
    current = spf.select_spf(records.txt.texts)
    if current is None:
        words.append("no SPF record: none created (add one covering the gateway and Exchange Online)")
    else:
        record = spf.parse(current)
        wanted = spf.authorise(record, targets.gateway_addresses,
                               include=targets.cloud_spf_include).check_lookups()
        if wanted != record:
            added = " ".join(term.text for term in wanted.terms[: len(wanted.terms) - len(record.terms)])
            edits.append(_spf_edit(records, str(wanted), records.txt.ttl))
            words.append(f"SPF: added {added} ({wanted.lookup_count} of {spf.MAX_LOOKUPS} lookups)")
    if (records.mx.records and not points_on_prem(records, targets)
            and records.mx.ttl > targets.cutover_ttl):
        edits.append(_mx_edit(records, records.mx.records, targets.cutover_ttl))
        words.append(f"MX TTL lowered from {records.mx.ttl} to {targets.cutover_ttl} s")
    return _change(records, edits, words)


def cutover(records: DomainRecords, targets: Targets) -> DomainChange:
    """MX to the gateway (TTL still low, for a quick way back) and autodiscover on-prem."""
    edits: list[RrsetEdit] = []
    words: list[str] = []
    if not points_on_prem(records, targets):
        edits.append(_mx_edit(records, (f"0 {targets.gateway_host}.",), targets.cutover_ttl))
        words.append(f"MX switched to 0 {targets.gateway_host} (was {_mx_words(records.mx_hosts)})")
    if records.autodiscover_target != targets.autodiscover_target:
        edits.append(_autodiscover_edit(records, targets.autodiscover_target,
                                        records.autodiscover.ttl or targets.restore_ttl))
        words.append(f"autodiscover CNAME switched to {targets.autodiscover_target} "
                     f"(was {records.autodiscover_target or 'none'})")
    return _change(records, edits, words)


def restore_ttl(records: DomainRecords, targets: Targets) -> DomainChange:
    """The MX TTL back up once every resolver answers the new MX."""
    if not records.mx.records or records.mx.ttl == targets.restore_ttl:
        return DomainChange(records.domain)
    return _change(records, [_mx_edit(records, records.mx.records, targets.restore_ttl)],
                   [f"MX TTL restored to {targets.restore_ttl} s"])


def rollback(records: DomainRecords, before: DnsRecordSet) -> DomainChange:
    """MX, SPF and autodiscover exactly as recorded before the wave, TTLs included."""
    edits: list[RrsetEdit] = []
    words: list[str] = []
    wanted_mx = sorted((preference, host) for preference, host in before.mx)
    if records.mx_hosts != wanted_mx or (wanted_mx and records.mx.ttl != before.mx_ttl):
        edits.append(_mx_edit(records, tuple(f"{p} {h}." for p, h in wanted_mx), before.mx_ttl))
        words.append(f"MX restored to {_mx_words(wanted_mx)} (TTL {before.mx_ttl} s)")
    current_spf = [text for text in records.txt.texts if spf.is_spf(text)]
    if current_spf != ([before.spf] if before.spf is not None else []):
        edits.append(_spf_edit(records, before.spf, before.spf_ttl or records.txt.ttl))
        words.append("SPF restored" if before.spf is not None else "SPF removed (there was none)")
    ad_ttl = before.autodiscover_ttl or records.autodiscover.ttl
    if (records.autodiscover_target != before.autodiscover
            or (before.autodiscover is not None and records.autodiscover.ttl != ad_ttl)):
        edits.append(_autodiscover_edit(records, before.autodiscover, ad_ttl))
        words.append(f"autodiscover CNAME restored to {before.autodiscover or 'none'}")
    return _change(records, edits, words)


# --------------------------------------------------------------------------- edits


def _change(records: DomainRecords, edits: list[RrsetEdit], words: list[str]) -> DomainChange:
    said = tuple(f"{records.domain}: {w}"[:_WORDS_MAX] for w in words)
    return DomainChange(records.domain, tuple(edits), said)


def _mx_edit(records: DomainRecords, wanted: tuple[str, ...], ttl: int) -> RrsetEdit:
    return RrsetEdit(records.domain, "MX", expected=records.mx, remove=records.mx.records,
                     add=wanted, ttl=ttl)


def _spf_edit(records: DomainRecords, text: str | None, ttl: int) -> RrsetEdit:
    """Swap the SPF record(s) for *text*; the name's other TXT records stay as they are."""
    txt = records.txt
    old = tuple(record for record, value in zip(txt.records, txt.texts, strict=True) if spf.is_spf(value))
    new = (spf.txt_presentation(text),) if text is not None else ()
    return RrsetEdit(records.domain, "TXT", expected=txt, remove=old, add=new, ttl=ttl)


def _autodiscover_edit(records: DomainRecords, target: str | None, ttl: int) -> RrsetEdit:
    current: Rrset = records.autodiscover
    add = (f"{target}.",) if target is not None else ()
    return RrsetEdit(autodiscover_name(records.domain), "CNAME", expected=current,
                     remove=current.records, add=add, ttl=ttl)


def _mx_words(hosts: list[tuple[int, str]]) -> str:
    return ", ".join(f"{preference} {host}" for preference, host in hosts) or "no MX"
