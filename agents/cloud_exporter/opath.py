"""The wave's domains as an OPATH `-Filter` for Get-Mailbox.

Exchange parses the filter server-side, so a value that closed its quotes
would become part of the query. Every value is single-quoted with `'`
doubled (OPATH's own escape), and domains are validated first anyway: the
filter is built from data, never from text an operator or a tenant typed
as code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

__all__ = ["domain_filter", "quote"]

_LABEL: Final = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DOMAIN_RE: Final = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")


def quote(value: str) -> str:
    """An OPATH string literal: single quotes, embedded quotes doubled, no wildcards of the caller's."""
    if any(ord(c) < 0x20 for c in value):
        raise ValueError("an OPATH value cannot hold control characters")
    return "'" + value.replace("'", "''") + "'"


def domain_filter(domains: Sequence[str]) -> str:
    """`EmailAddresses -like '*@d1' -or ...`: every recipient with an address in one of *domains*."""
    if not domains:
        raise ValueError("a wave needs at least one domain")
    names = []
    for domain in domains:
        name = domain.strip().rstrip(".").lower()
        if len(name) > 253 or not _DOMAIN_RE.match(name):
            raise ValueError(f"not a DNS domain name: {domain[:80]!r}")
        names.append(name)
    unique = list(dict.fromkeys(names))
    return " -or ".join(f"EmailAddresses -like {quote('*@' + name)}" for name in unique)
