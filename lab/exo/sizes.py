"""Exchange's ByteQuantifiedSize as text: ``1.2 GB (1,288,490,188 bytes)``.

The admin API returns sizes as these strings, so the product must parse them;
the stand-in writes them the way Exchange does (binary units, at most four
significant digits, the exact byte count in parentheses).
"""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_size"]

_UNITS = ("B", "KB", "MB", "GB", "TB")
_BYTES_RE = re.compile(r"\(([\d,]+) bytes\)")


def format_size(size: int) -> str:
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.4g} {_UNITS[unit]} ({size:,} bytes)"


def parse_size(text: str) -> int:
    match = _BYTES_RE.search(text)
    if not match:
        raise ValueError(f"not a ByteQuantifiedSize: {text[:60]!r}")
    return int(match.group(1).replace(",", ""))
