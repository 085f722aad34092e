"""OData on the wire: typed values, `$select`, and opaque skip tokens for paging.

Paging is keyset-based: each result row has its record's creation sequence
number, and the skip token carries the last one served. A mailbox that moves
away between two pages therefore shifts nothing and no row is served twice.
The token is signed so a client can only replay what the server issued, and it
is bound to the request body (the client must POST the same body to nextLink).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lab.exo import errors

__all__ = ["PageSigner", "PageToken", "annotate", "parse_select", "select", "take_page"]

_INT32 = 2**31


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def annotate(record: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready copy of *record* with Exchange's ``Prop@odata.type`` annotations."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, uuid.UUID):
            out[f"{key}@odata.type"] = "#Guid"
            out[key] = str(value)
        elif isinstance(value, datetime):
            out[f"{key}@odata.type"] = "#DateTime"
            out[key] = _iso(value)
        elif isinstance(value, list | tuple):
            out[f"{key}@odata.type"] = "#Collection(String)"
            out[key] = [str(v) for v in value]
        elif isinstance(value, dict):
            out[key] = annotate(value)
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _INT32:
            out[f"{key}@odata.type"] = "#Int64"
            out[key] = value
        else:
            out[key] = value
    return out


def parse_select(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return names or None


def select(record: Mapping[str, Any], names: list[str] | None) -> Mapping[str, Any]:
    """Only the properties named (case-insensitively); unknown names are ignored."""
    if names is None:
        return record
    wanted = {n.lower() for n in names}
    return {k: v for k, v in record.items() if k.lower() in wanted}


@dataclass(frozen=True)
class PageToken:
    after_seq: int  # rows with a larger sequence number come next
    served: int  # rows served so far (ResultSize counts across pages)


class PageSigner:
    """Issues and checks skip tokens (HMAC with a per-tenant key)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @staticmethod
    def request_digest(cmdlet: str, parameters: Mapping[str, Any]) -> str:
        canonical = json.dumps([cmdlet.lower(), parameters], sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def issue(self, token: PageToken, digest: str) -> str:
        payload = json.dumps({"a": token.after_seq, "n": token.served, "h": digest},
                             separators=(",", ":")).encode()
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        signature = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{body}.{signature}"

    def check(self, raw: str, digest: str) -> PageToken:
        body, _, signature = raw.partition(".")
        expected = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:24]
        if not hmac.compare_digest(signature, expected):
            raise errors.bad_request("The skip token is not valid.",
                                     "Microsoft.OData.ODataException")
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if payload["h"] != digest:
            raise errors.bad_request(
                "The skip token was issued for a different request; POST the same body to "
                "@odata.nextLink.", "Microsoft.OData.ODataException")
        return PageToken(after_seq=int(payload["a"]), served=int(payload["n"]))


def take_page(rows: Sequence[tuple[int, Any]], after_seq: int,
              limit: int) -> tuple[list[Any], int | None]:
    """Up to *limit* rows after *after_seq* (rows ascend by seq), and the last seq served
    when more remain."""
    start = bisect.bisect_right(rows, after_seq, key=lambda row: row[0])
    chosen = rows[start:start + limit]
    more = start + limit < len(rows)
    return [item for _, item in chosen], (chosen[-1][0] if more and chosen else None)
