"""SPF records (RFC 7208) as the cutover needs them: parse, authorise, count, refuse.

During the migration relayed mail leaves from both Exchange Online and the
on-prem gateway, so the domain's SPF must authorise both (EXCHANGE.md, step
2). The rules enforced here are the ones receivers enforce with a permerror,
which would make every message of the domain fail SPF:

* exactly one record starting with `v=spf1` on a name (§4.5);
* at most 10 terms that cause DNS lookups: include, a, mx, ptr, exists and
  the redirect modifier (§4.6.4); ip4, ip6 and all cost nothing;
* only the mechanisms the RFC defines (`ipv4:` is a typo receivers reject);
* redirect and exp at most once each (§6); unknown modifiers are kept as
  written, because receivers must ignore them.

The lookup count is the record's own terms: what an `include` costs inside
the included record is not resolved here (that needs the internet).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "EXCHANGE_ONLINE_INCLUDE",
    "MAX_LOOKUPS",
    "SpfError",
    "SpfRecord",
    "Term",
    "authorise",
    "is_spf",
    "parse",
    "select_spf",
    "txt_presentation",
]

MAX_LOOKUPS = 10
EXCHANGE_ONLINE_INCLUDE = "spf.protection.outlook.com"
VERSION = "v=spf1"

_MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
_LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
_NEEDS_DOMAIN = frozenset({"include", "exists"})
_MODIFIER = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9._-]*)=(?P<value>.*)$")
_DIRECTIVE = re.compile(r"^(?P<qualifier>[+?~-]?)(?P<name>[A-Za-z][A-Za-z0-9._-]*)(?P<rest>[:/].*)?$")
# Typos seen in the wild (Microsoft's own page once wrote `ipv4:`), with what was meant.
_LIKELY_MEANT = {"ipv4": "ip4", "ipv6": "ip6", "ip": "ip4", "includes": "include", "inc": "include"}
_TXT_CHUNK = 255  # a TXT character-string holds at most 255 octets (RFC 1035 §3.3)


class SpfError(ValueError):
    """The record would make receivers return permerror; `reason` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Term:
    """One directive or modifier, kept as written so an edit changes nothing else."""

    text: str
    name: str  # lower-case mechanism or modifier name
    value: str = ""  # after `:` (or `=` for a modifier), with any CIDR suffix
    qualifier: str = ""  # "+", "-", "~", "?" as written; "" means "+" for a mechanism
    is_modifier: bool = False

    @property
    def causes_lookup(self) -> bool:
        if self.is_modifier:
            return self.name == "redirect"
        return self.name in _LOOKUP_MECHANISMS

    @property
    def passes(self) -> bool:
        return not self.is_modifier and self.qualifier in ("", "+")


@dataclass(frozen=True)
class SpfRecord:
    terms: tuple[Term, ...]

    def __str__(self) -> str:
        return " ".join([VERSION, *(term.text for term in self.terms)])

    @property
    def lookup_terms(self) -> tuple[Term, ...]:
        return tuple(term for term in self.terms if term.causes_lookup)

    @property
    def lookup_count(self) -> int:
        return len(self.lookup_terms)

    def check_lookups(self) -> SpfRecord:
        """Itself, or SpfError naming the count and the terms when over the RFC's limit."""
        if self.lookup_count > MAX_LOOKUPS:
            listed = " ".join(term.text for term in self.lookup_terms)
            raise SpfError(
                f"SPF would need {self.lookup_count} DNS lookups, more than the {MAX_LOOKUPS} "
                f"RFC 7208 allows (receivers return permerror): {listed}")
        return self

    def authorises(self, address: str) -> bool:
        """True when a pass-qualified ip4/ip6 term already covers *address*."""
        ip = ipaddress.ip_address(address)
        return any(term.passes and _covers(term, ip) for term in self.terms)

    def includes(self, domain: str) -> bool:
        wanted = domain.rstrip(".").lower()
        return any(term.passes and term.name == "include" and term.value.rstrip(".").lower() == wanted
                   for term in self.terms)


def is_spf(text: str) -> bool:
    """Whether a TXT value is an SPF record: `v=spf1` alone or followed by a space (§4.5)."""
    head = text[: len(VERSION) + 1].lower()
    return head == VERSION or head == VERSION + " "


def select_spf(txt_values: Iterable[str]) -> str | None:
    """The one SPF record among a name's TXT values; SpfError when there are several."""
    found = [value for value in txt_values if is_spf(value)]
    if len(found) > 1:
        raise SpfError(f"{len(found)} SPF records on one name (RFC 7208 allows one; receivers "
                       f"return permerror): " + " | ".join(found))
    return found[0] if found else None


def parse(text: str) -> SpfRecord:
    """Parse an SPF record; SpfError says what a receiver would reject."""
    if not text.isascii() or any(ord(c) < 0x20 for c in text):
        raise SpfError("an SPF record must be printable ASCII")
    words = text.split()
    if not words or words[0].lower() != VERSION:
        raise SpfError(f"not an SPF record (must start with {VERSION!r}): {text[:80]!r}")
    terms = tuple(_term(word) for word in words[1:])
    for once in ("redirect", "exp"):
        if sum(1 for term in terms if term.is_modifier and term.name == once) > 1:
            raise SpfError(f"the {once}= modifier appears more than once")
    return SpfRecord(terms)


def authorise(
    record: SpfRecord, addresses: Sequence[str], *, include: str | None = EXCHANGE_ONLINE_INCLUDE
) -> SpfRecord:
    """*record* with ip4/ip6 terms for *addresses* and an include of *include*, where missing.

    New terms go right after the version, ahead of every existing mechanism:
    ip4/ip6 cost no lookup and match first, and the `all` term keeps the last
    word. An address the record explicitly fails or soft-fails is refused
    rather than overridden, because someone decided that on purpose.
    """
    added: list[Term] = []
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if record.authorises(address):
            continue
        denied = [term.text for term in record.terms if not term.passes and _covers(term, ip)]
        if denied:
            raise SpfError(f"the SPF record explicitly denies the gateway address {address} "
                           f"({' '.join(denied)}); fix it by hand")
        kind = "ip4" if ip.version == 4 else "ip6"
        added.append(Term(text=f"{kind}:{ip}", name=kind, value=str(ip)))
    if include and not record.includes(include):
        added.append(Term(text=f"include:{include}", name="include", value=include))
    return SpfRecord((*added, *record.terms)) if added else record


def txt_presentation(text: str) -> str:
    """*text* as TXT record data: quoted character-strings of at most 255 octets."""
    chunks = [text[i:i + _TXT_CHUNK] for i in range(0, len(text), _TXT_CHUNK)] or [""]
    return " ".join('"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)


# --------------------------------------------------------------------------- terms


def _term(word: str) -> Term:
    modifier = _MODIFIER.match(word)
    if modifier and ":" not in modifier.group("name"):
        name, value = modifier.group("name").lower(), modifier.group("value")
        if name in ("redirect", "exp") and not value:
            raise SpfError(f"{word!r}: the {name}= modifier needs a domain")
        return Term(text=word, name=name, value=value, is_modifier=True)
    directive = _DIRECTIVE.match(word)
    if not directive:
        raise SpfError(f"{word!r} is neither a mechanism nor a modifier")
    name = directive.group("name").lower()
    rest = directive.group("rest") or ""
    if name not in _MECHANISMS:
        meant = _LIKELY_MEANT.get(name)
        hint = f" (did you mean {meant}{rest}?)" if meant else ""
        raise SpfError(f"{word!r}: unknown mechanism {name!r}{hint}; receivers return permerror")
    value = rest[1:] if rest.startswith(":") else rest
    term = Term(text=word, name=name, value=value, qualifier=directive.group("qualifier"))
    _check_value(term)
    return term


def _check_value(term: Term) -> None:
    if term.name == "all" and term.value:
        raise SpfError(f"{term.text!r}: `all` takes no argument")
    if term.name in _NEEDS_DOMAIN and not term.value:
        raise SpfError(f"{term.text!r}: {term.name} needs a domain (`{term.name}:example.com`)")
    if term.name in ("ip4", "ip6") and _network(term) is None:
        raise SpfError(f"{term.text!r}: not a valid {term.name} address or network")


def _covers(term: Term, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    network = _network(term)
    return network is not None and network.version == ip.version and ip in network


def _network(term: Term) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network an ip4/ip6 term names (host bits allowed, as receivers allow them)."""
    if term.is_modifier or term.name not in ("ip4", "ip6"):
        return None
    try:
        network = ipaddress.ip_network(term.value, strict=False)
    except ValueError:
        return None
    expected = 4 if term.name == "ip4" else 6
    return network if network.version == expected else None
