"""A tenant worth migrating: generated mailboxes, or rows from a CSV file.

Generation is deterministic per (seed, index), so the same configuration gives
the same tenant, and `POST /lab/seed` can add more later without repeating
anyone. Names include non-ASCII scripts and display names full of PowerShell
and LDAP metacharacters, because those are the ones that break careless
scripts and filters; aliases stay valid Exchange aliases (RFC 5322 atext, so
``o'brien`` is fine).
"""

from __future__ import annotations

import csv
import io
import math
import random
import re
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from contracts.fields import is_email_address
from lab.exo.faults import parse_fault
from lab.exo.model import NIL_GUID, Fault, Mailbox

__all__ = ["MailboxFactory", "SeedRow", "read_seed_csv"]

# (display name, alias): the people every lab tenant should have
SPECIAL_PEOPLE: Final[tuple[tuple[str, str], ...]] = (
    ("Zoë Ångström", "zoe.angstrom"),
    ("x'; Remove-Mailbox -Identity * #", "x.remove"),
    ("José Müller", "jose.muller"),
    ("$(Invoke-Expression 'calc')", "invoke.expression"),
    ("李雷", "li.lei"),
    ('Robert")(cn=*))(|(cn=*', "robert.cn"),
    ("Björk Guðmundsdóttir", "bjork.gudmundsdottir"),
    ('a,b+c=d<e>f#g;h\\"i', "a+b=c"),
    ("Seán O'Brien", "o'brien"),
    ("Back`tick `$env:USERNAME `n", "back.tick"),
    ("Ольга Петрова", "olga.petrova"),
    ("@{Name='x'}; [char]39 | Out-Null", "hash.table"),
    ("Νίκος Παπαδόπουλος", "nikos.papadopoulos"),
    ("%USERPROFILE% & del /q *.*", "percent.sign"),
    ("محمد عبدالله", "mohammed.abdullah"),
    ("Renée D'Angelo", "d'angelo"),
    ("Đặng Thị Ánh", "dang.thi.anh"),
    ("*)(objectClass=*", "star.filter"),
    ("Mary-Jane Watson_Smith", "mary-jane_watson"),
    ("Tom {Newsletter} Ward", "tom+news"),
    ("Saoirse Ní Bhriain", "saoirse.nibhriain"),
    ("Łukasz Żółkiewski", "lukasz.zolkiewski"),
)

FIRST_NAMES: Final = (
    "Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoë", "Åsa", "José",
    "François", "Jürgen", "Noémie", "Łukasz", "Ágnes", "Chloé", "Søren", "Mårten", "Renée",
    "Dagný", "Ioana", "Kenji", "Priya", "Oluwaseun", "Siobhán", "Zeynep", "Mateo", "Amélie",
    "Henrik", "Aoife", "Nils", "Fatima", "Hiroshi", "Inès", "Thandiwe", "Björn", "Leilani",
)
LAST_NAMES: Final = (
    "Smith", "Jones", "Müller", "Ångström", "Guðmundsdóttir", "O'Brien", "García", "Nowak",
    "Kowalczyk", "Dubois", "Rossi", "Sørensen", "Lindqvist", "Novák", "Horváth", "Yılmaz",  # noqa: RUF001 - a Turkish name
    "Tanaka", "Patel", "Okafor", "MacDonald", "D'Angelo", "Van der Berg", "de la Cruz",
    "Ó Súilleabháin", "Żółć", "Fernández", "Schröder", "Nakamura", "Mbeki", "Kristiansen",
)
SHARED_NAMES: Final = (
    "Sales", "Support", "Reception", "Finance", "HR Team", "Facilities", "Marketing",
    "IT Helpdesk", "Info", "Payroll", "Legal", "Events",
)
_FOLD: Final = str.maketrans({
    "ø": "o", "Ø": "o", "ł": "l", "Ł": "l", "ð": "d", "Ð": "d", "þ": "th", "Þ": "th",
    "æ": "ae", "Æ": "ae", "ß": "ss", "đ": "d", "Đ": "d", "ı": "i", "œ": "oe",  # noqa: RUF001
})
_NOT_ALIAS = re.compile(r"[^a-z0-9'._-]+")

MIN_SIZE: Final = 5 * 1024 * 1024
MAX_SIZE: Final = 2 * 1024 * 1024 * 1024


def fold_alias(text: str) -> str:
    """ASCII alias from a name: Zoë Ångström -> zoe.angstrom."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    alias = _NOT_ALIAS.sub("", ascii_only.replace(" ", ""))
    return re.sub(r"\.{2,}", ".", alias).strip(".'-") or "user"


@dataclass(frozen=True)
class SeedRow:
    """One mailbox as a CSV row describes it (missing values are generated)."""

    display_name: str
    alias: str
    primary_smtp_address: str | None = None
    recipient_type_details: str = "UserMailbox"
    has_archive: bool = False
    size_mb: float | None = None
    fault: Fault | None = None


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "y", "$true")


def read_seed_csv(text: str) -> list[SeedRow]:
    """Rows of a seed CSV; ValueError names the line of a bad row."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    for required in ("displayname", "alias"):
        if required not in columns:
            raise ValueError(f"seed CSV: missing column {required!r}")
    rows = []
    for line, raw in enumerate(reader, start=2):
        def get(name: str, raw: dict[str, str] = raw) -> str:
            key = columns.get(name)
            return (raw.get(key) or "").strip() if key else ""
        try:
            fault_spec = get("fault")
            size = get("sizemb")
            rows.append(SeedRow(
                display_name=get("displayname"),
                alias=get("alias"),
                primary_smtp_address=get("primarysmtpaddress") or None,
                recipient_type_details=get("recipienttypedetails") or "UserMailbox",
                has_archive=_truthy(get("hasarchive")),
                size_mb=float(size) if size else None,
                fault=parse_fault(fault_spec) if fault_spec else None,
            ))
        except ValueError as exc:
            raise ValueError(f"seed CSV line {line}: {exc}") from None
    return rows


class MailboxFactory:
    """Makes mailboxes for one tenant, keeping names and addresses unique."""

    def __init__(self, *, tenant_name: str, domains: list[str], seed: int) -> None:
        self.tenant_name = tenant_name
        self.domains = [d.lower() for d in domains]
        self.seed = seed
        self.taken_aliases: set[str] = set()
        self.taken_addresses: set[str] = set()

    def remember(self, mailbox: Mailbox) -> None:
        self.taken_aliases.add(mailbox.alias.lower())
        for proxy in mailbox.email_addresses:
            self.taken_addresses.add(proxy.split(":", 1)[1].lower())

    def generate(self, start_index: int, count: int, first_seq: int) -> Iterator[Mailbox]:
        """*count* generated mailboxes; index i always yields the same person."""
        for offset in range(count):
            index = start_index + offset
            rng = random.Random(f"{self.seed}:{index}")
            special = index // 2 if index % 2 == 1 else None
            shared = rng.random() < 0.05
            if special is not None and special < len(SPECIAL_PEOPLE):
                display, alias = SPECIAL_PEOPLE[special]
                shared = False
            elif shared:
                display = rng.choice(SHARED_NAMES)
                alias = fold_alias(display)
            else:
                display = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
                first, _, last = display.partition(" ")
                alias = f"{fold_alias(first)}.{fold_alias(last)}"
            row = SeedRow(
                display_name=display,
                alias=alias,
                recipient_type_details="SharedMailbox" if shared else "UserMailbox",
                has_archive=not shared and rng.random() < 0.2,
            )
            yield self.build(row, rng, first_seq + offset)

    def check_rows(self, rows: list[SeedRow]) -> None:
        """Refuse the whole CSV before adding anyone when one row cannot be added."""
        seen: set[str] = set()
        for number, row in enumerate(rows, start=2):
            primary = row.primary_smtp_address
            if not row.display_name or not row.alias:
                raise ValueError(f"seed CSV line {number}: DisplayName and Alias are required")
            if primary is None:
                continue
            domain = primary.rpartition("@")[2].lower()
            if not is_email_address(primary) or domain not in self.domains:
                raise ValueError(f"seed CSV line {number}: {primary!r} is not an address in an "
                                 f"accepted domain ({', '.join(self.domains)})")
            if primary.lower() in self.taken_addresses or primary.lower() in seen:
                raise ValueError(f"seed CSV line {number}: {primary!r} is already used")
            seen.add(primary.lower())

    def from_rows(self, rows: list[SeedRow], first_seq: int) -> Iterator[tuple[Mailbox, SeedRow]]:
        self.check_rows(rows)
        for offset, row in enumerate(rows):
            rng = random.Random(f"{self.seed}:csv:{row.alias}")
            yield self.build(row, rng, first_seq + offset), row

    def build(self, row: SeedRow, rng: random.Random, seq: int) -> Mailbox:
        alias = self._unique_alias(row.alias)
        domain = self.domains[0]
        primary = row.primary_smtp_address or f"{alias}@{domain}"
        if not is_email_address(primary):
            raise ValueError(f"{primary!r} is not a valid SMTP address")
        if primary.split("@", 1)[1].lower() not in self.domains:
            raise ValueError(f"{primary!r}: {primary.split('@', 1)[1]} is not an accepted domain")
        if primary.lower() in self.taken_addresses:
            raise ValueError(f"{primary!r} is already used by another recipient")
        local = primary.split("@", 1)[0]
        addresses = [
            f"SMTP:{primary}",
            f"smtp:{local}@{self.tenant_name}.onmicrosoft.com",
            f"smtp:{local}@{self.tenant_name}.mail.onmicrosoft.com",
        ]
        if rng.random() < 0.15:
            addresses.append(f"smtp:{local.replace('.', '')}@{domain}")
        if len(self.domains) > 1 and rng.random() < 0.3:
            addresses.append(f"smtp:{local}@{self.domains[1]}")
        if rng.random() < 0.1:
            addresses.append(
                "X500:/o=Fabrikam/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
                f"/cn=Recipients/cn={local}{rng.randrange(100, 999)}"
            )
        addresses = self._unique_addresses(addresses)

        def guid() -> uuid.UUID:
            return uuid.UUID(int=rng.getrandbits(128), version=4)

        if row.size_mb is not None:
            size = max(0, int(row.size_mb * 1024 * 1024))
        else:
            size = int(math.exp(rng.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE))))
        has_archive = row.has_archive
        archive_size = int(size * rng.uniform(0.2, 1.5)) if has_archive else 0
        mailbox = Mailbox(
            seq=seq,
            guid=guid(),
            name=alias,
            alias=alias,
            display_name=row.display_name,
            primary_smtp_address=primary,
            user_principal_name=f"{local}@{primary.split('@', 1)[1]}",
            exchange_guid=guid(),
            archive_guid=guid() if has_archive else NIL_GUID,
            archive_status="Active" if has_archive else "None",
            legacy_exchange_dn=(
                "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
                f"/cn=Recipients/cn={guid().hex}-{alias}"
            ),
            email_addresses=addresses,
            recipient_type_details=row.recipient_type_details,
            external_directory_object_id=guid(),
            size_bytes=size,
            item_count=max(1, size // rng.randrange(40_000, 120_000)),
            archive_size_bytes=archive_size,
            archive_item_count=archive_size // 80_000,
            database=f"EURPR01DG{rng.randrange(100, 999)}-db{rng.randrange(10, 999):03d}",
        )
        self.remember(mailbox)
        return mailbox

    def _unique_alias(self, alias: str) -> str:
        candidate, n = alias, 1
        while candidate.lower() in self.taken_aliases:
            n += 1
            candidate = f"{alias}{n}"
        return candidate

    def _unique_addresses(self, proxies: list[str]) -> list[str]:
        kept: list[str] = []
        seen: set[str] = set()
        for i, proxy in enumerate(proxies):
            address = proxy.split(":", 1)[1].lower()
            if i > 0 and (address in self.taken_addresses or address in seen):
                continue  # a secondary that someone else already has: leave it out
            seen.add(address)
            kept.append(proxy)
        return kept
