"""Names and secrets for new accounts: pure functions, no I/O.

Everything here turns cloud data (an alias, a display name chosen by whoever
ran the tenant) into values Active Directory accepts. Cloud data is never
trusted to be tidy: names may hold commas, quotes, LDAP filter syntax,
PowerShell, or any script; the output is always within AD's limits and the
adapter RDN-escapes the CN when it builds the DN.
"""

from __future__ import annotations

import re
import secrets
import string
import unicodedata
import uuid
from collections.abc import Iterable, Iterator

__all__ = [
    "COMMON_NAME_MAX",
    "SAM_ACCOUNT_NAME_MAX",
    "common_name",
    "complexity_tokens",
    "generate_password",
    "person_name_parts",
    "sam_account_name_base",
    "sam_account_name_candidates",
    "to_ascii",
]

SAM_ACCOUNT_NAME_MAX = 20  # the pre-Windows 2000 logon name limit
COMMON_NAME_MAX = 64  # rangeUpper of cn in the AD schema
GIVEN_NAME_MAX = 64
SURNAME_MAX = 64
_LAST_SUFFIX = 9999

# Letters AD-era tools expect spelt out rather than stripped of their marks
# (NFKD leaves these untouched because they are not "letter + accent").
_TRANSLITERATIONS = str.maketrans({
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "ł": "l", "Ł": "L",
    "\u0131": "i", "ŋ": "ng", "Ŋ": "Ng",  # dotless i
})

# AD forbids " / \ [ ] : ; | = , + * ? < > @ and control characters; we keep a
# stricter set (letters, digits, dot, hyphen, underscore) because the name also
# ends up in scripts, file paths and NetBIOS-era tools, and a trailing "$"
# would make it look like a computer account.
_NOT_IN_SAM_ACCOUNT_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_WORD = re.compile(r"^[^\W\d_]+(?:['\u2019.-][^\W\d_]+)*\.?$")
_COMPLEXITY_DELIMITERS = re.compile(r"[,.\-_#\s]+")

_PASSWORD_CLASSES = (
    string.ascii_uppercase,
    string.ascii_lowercase,
    string.digits,
    "!#%+-.:=?@^_~",  # no quotes or backslash: the value travels inside '"…"'
)
_PASSWORD_ALPHABET = "".join(_PASSWORD_CLASSES)


def to_ascii(text: str) -> str:
    """Latin letters without their marks (Zoë -> Zoe, Ångström -> Angstrom); other scripts vanish."""
    spelt = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATIONS))
    return "".join(c for c in spelt if c.isascii() and not unicodedata.combining(c))


def sam_account_name_base(alias: str, exchange_guid: uuid.UUID) -> str:
    """The preferred sAMAccountName for a mailbox: its alias, made safe, at most 20 characters.

    Falls back to a name made from the ExchangeGuid when nothing usable is
    left (an alias of only symbols or of a non-Latin script), so it is never empty.
    """
    cleaned = _NOT_IN_SAM_ACCOUNT_NAME.sub("", to_ascii(alias))
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    cleaned = cleaned[:SAM_ACCOUNT_NAME_MAX].strip(". ")
    if not cleaned:
        cleaned = f"hb-{exchange_guid.hex[:12]}"
    return cleaned


def sam_account_name_candidates(base: str) -> Iterator[str]:
    """`base`, then `base2`, `base3`, ... each cut so that it stays within 20 characters."""
    yield base
    for number in range(2, _LAST_SUFFIX + 1):
        suffix = str(number)
        stem = base[: SAM_ACCOUNT_NAME_MAX - len(suffix)].rstrip(". ")
        yield f"{stem}{suffix}"


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut_to_units(text: str, limit: int) -> str:
    """The longest prefix of *text* within *limit* UTF-16 units (how AD counts)."""
    while _utf16_units(text) > limit:
        text = text[:-1]
    return text


def common_name(display_name: str, fallback: str, attempt: int = 1) -> str:
    """The CN of a new account: the display name, tidied, at most 64 characters.

    *attempt* 2, 3, ... adds " (2)", " (3)", ... for a name already used in the OU.
    Control characters go and whitespace collapses; everything else is kept as
    is (the adapter escapes it for the DN; nothing is trimmed to make it safe).
    """
    printable = "".join(" " if unicodedata.category(c).startswith("C") else c for c in display_name)
    name = " ".join(printable.split()) or " ".join(fallback.split()) or "Mailbox"
    suffix = "" if attempt <= 1 else f" ({attempt})"
    return _cut_to_units(name, COMMON_NAME_MAX - len(suffix)).rstrip() + suffix


def person_name_parts(display_name: str) -> tuple[str | None, str | None]:
    """(givenName, sn) when the display name clearly is a person's name, else (None, None).

    "Zoë Ångström" -> ("Zoë", "Ångström"); "Smith, Anna" -> ("Anna", "Smith");
    "Sales Team 2", "x'; Remove-Mailbox" or "李雷" -> nothing is guessed.
    """
    name = " ".join(display_name.split())
    if name.count(",") == 1:
        surname, _, given = (part.strip() for part in name.partition(","))
        words = [*given.split(), *surname.split()]
        if given and surname and all(_NAME_WORD.match(w) for w in words):
            return given[:GIVEN_NAME_MAX], surname[:SURNAME_MAX]
        return None, None
    words = name.split()
    if 2 <= len(words) <= 4 and all(_NAME_WORD.match(w) for w in words):
        return words[0][:GIVEN_NAME_MAX], " ".join(words[1:])[:SURNAME_MAX]
    return None, None


def complexity_tokens(*values: str) -> set[str]:
    """The parts of account and display names AD refuses to see inside a password."""
    tokens: set[str] = set()
    for value in values:
        folded = value.casefold()
        if len(folded) >= 3:
            tokens.add(folded)
        tokens.update(t for t in _COMPLEXITY_DELIMITERS.split(folded) if len(t) >= 3)
    return tokens


def generate_password(length: int, *, avoid: Iterable[str] = ()) -> str:
    """A random password meeting AD complexity: all four character classes, none of *avoid*.

    Nobody ever sees it: the person's first logon goes through a reset by the
    helpdesk, as with any account created for a migration.
    """
    if length < len(_PASSWORD_CLASSES):
        raise ValueError(f"a password needs at least {len(_PASSWORD_CLASSES)} characters")
    forbidden = {token.casefold() for token in avoid if len(token) >= 3}
    shuffler = secrets.SystemRandom()
    while True:
        characters = [secrets.choice(group) for group in _PASSWORD_CLASSES]
        characters += [secrets.choice(_PASSWORD_ALPHABET) for _ in range(length - len(characters))]
        shuffler.shuffle(characters)
        password = "".join(characters)
        if not any(token in password.casefold() for token in forbidden):
            return password
