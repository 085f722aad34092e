"""Per-mailbox failure injection: the spellings the CSV and the control API accept.

Each fault reproduces one failure class of EXCHANGE.md with the text Exchange
reports, so the product's classifier sees what it would see in production:

* ``mrsproxy-limit[:N]``      the first N MRSProxy `open` attempts are refused
  (MRSProxyConnectionLimitReachedTransientException); the move waits Queued.
* ``communication-error[:N]`` N CommunicationErrorTransientException hiccups while syncing.
* ``missing-guid``            validation fails: no target with the mailbox GUID.
* ``missing-smtp-proxy``      validation fails: the target lacks an SMTP proxy.
* ``stall[:seconds]``         syncing pauses with StalledDueToTarget_MdbAvailability.
* ``bad-items[:N]``           N skipped items: TooManyBadItems until approved.
"""

from __future__ import annotations

from typing import Final

from lab.exo.model import Fault

__all__ = ["DEFAULTS", "parse_fault"]

DEFAULTS: Final[dict[str, float]] = {
    "mrsproxy-limit": 3,
    "communication-error": 1,
    "missing-guid": 0,
    "missing-smtp-proxy": 0,
    "stall": 5.0,
    "bad-items": 25,
}
_COUNTED = ("mrsproxy-limit", "communication-error", "bad-items")


def parse_fault(spec: str) -> Fault:
    """Parse ``kind[:value]``; ValueError names the accepted kinds."""
    kind, _, raw = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in DEFAULTS:
        raise ValueError(f"unknown fault {kind!r}; expected one of {sorted(DEFAULTS)}")
    if raw and kind in ("missing-guid", "missing-smtp-proxy"):
        raise ValueError(f"fault {kind!r} takes no value")
    try:
        value = float(raw) if raw else DEFAULTS[kind]
    except ValueError:
        raise ValueError(f"fault {kind!r}: {raw!r} is not a number") from None
    if value < 0:
        raise ValueError(f"fault {kind!r}: the value must not be negative")
    if kind == "stall":
        return Fault(kind=kind, seconds=value, spec=f"{kind}:{value:g}")
    if kind in _COUNTED:
        return Fault(kind=kind, count=int(value), spec=f"{kind}:{int(value)}")
    return Fault(kind=kind, spec=kind)
