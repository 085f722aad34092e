"""The real on-prem Exchange behind the port: the shell templates over WinRM.

Large inputs are split so that each command stays inside the contract's
limits (1,000 recipients per mail-enable, 5,000 identities per read) and
each request under `max_request_bytes` of JSON: ConvertFrom-Json on older
Exchange hosts refuses documents over 2 MB.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Final, TypeVar

from agents.shared.exchange_shell import ExchangeShell, ShellResponseInvalid, request_json
from contracts.events import MailEnableMode
from contracts.onprem import (
    MailEnableItem,
    MailEnableRequest,
    MailEnableResult,
    OrgInspectRequest,
    OrgInspectResponse,
    OrgPrepareRequest,
    OrgPrepareResponse,
    RecipientReadRequest,
    RecipientReadResult,
)

__all__ = ["ShellExchange"]

MAX_RECIPIENTS: Final = 1000
MAX_IDENTITIES: Final = 5000
MAX_REQUEST_BYTES: Final = 1_500_000

T = TypeVar("T")


def _pieces(items: Sequence[T], *, max_count: int, max_bytes: int, size: dict[int, int]) -> Iterator[list[T]]:
    """Consecutive runs of *items*, each at most *max_count* long and about *max_bytes* of JSON."""
    piece: list[T] = []
    used = 0
    for index, item in enumerate(items):
        cost = size.get(index, 0)
        if piece and (len(piece) >= max_count or used + cost > max_bytes):
            yield piece
            piece, used = [], 0
        piece.append(item)
        used += cost
    if piece:
        yield piece


def _in_order(asked: Sequence[uuid.UUID], answered: Sequence[uuid.UUID], operation: str) -> None:
    if list(asked) != list(answered):
        raise ShellResponseInvalid(f"{operation} answered for other recipients than it was asked about")


class ShellExchange:
    """`OnpremExchange` over an `ExchangeShell` (which it does not own)."""

    def __init__(self, shell: ExchangeShell, *, max_request_bytes: int = MAX_REQUEST_BYTES) -> None:
        self._shell = shell
        self._max_bytes = max_request_bytes

    def inspect_org(self) -> OrgInspectResponse:
        return self._shell.run(OrgInspectRequest())

    def prepare_org(self, request: OrgPrepareRequest) -> OrgPrepareResponse:
        return self._shell.run(request)

    def mail_enable(self, mode: MailEnableMode, items: Sequence[MailEnableItem]) -> list[MailEnableResult]:
        sizes = {i: len(request_json(item)) + 1 for i, item in enumerate(items)}
        results: list[MailEnableResult] = []
        for piece in _pieces(items, max_count=MAX_RECIPIENTS, max_bytes=self._max_bytes, size=sizes):
            response = self._shell.run(MailEnableRequest(mode=mode, recipients=piece))
            _in_order([i.identity for i in piece], [r.identity for r in response.results], "mail-enable")
            results += response.results
        return results

    def read_recipients(self, identities: Sequence[uuid.UUID]) -> list[RecipientReadResult]:
        results: list[RecipientReadResult] = []
        for piece in _pieces(identities, max_count=MAX_IDENTITIES, max_bytes=self._max_bytes, size={}):
            response = self._shell.run(RecipientReadRequest(identities=piece))
            _in_order(piece, [r.identity for r in response.results], "recipient-read")
            results += response.results
        return results
