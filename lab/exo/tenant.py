"""The tenant the stand-in serves: recipients, org settings, migration objects, moves.

One lock guards everything; cmdlets and the move simulator take it for short,
in-memory work only (never across a network call). Lookups follow Exchange's
identity rules loosely: a mailbox is found by name, alias, any SMTP address,
UPN, GUIDs or LegacyExchangeDN, case-insensitively.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from lab.exo import errors
from lab.exo.config import ExoConfig
from lab.exo.model import (
    AcceptedDomain,
    Fault,
    Mailbox,
    MigrationBatch,
    MigrationEndpoint,
    Move,
    OutboundConnector,
    Phase,
    utcnow,
)
from lab.exo.seed import MailboxFactory, SeedRow, read_seed_csv

__all__ = ["Tenant"]

STATE_VERSION = 1


def _identity_keys(mailbox: Mailbox) -> set[str]:
    keys = {
        mailbox.name, mailbox.alias, mailbox.primary_smtp_address, mailbox.user_principal_name,
        str(mailbox.exchange_guid), str(mailbox.guid), str(mailbox.external_directory_object_id),
        mailbox.legacy_exchange_dn,
    }
    keys.update(p.split(":", 1)[1] for p in mailbox.email_addresses
                if p.lower().startswith("smtp:"))
    return {k.lower() for k in keys}


class Tenant:
    """All state of the fake Exchange Online organisation."""

    def __init__(self, config: ExoConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.tenant_id = config.tenant_id
        self.signing_key = secrets.token_bytes(32)  # access tokens; kept in the state file
        self.mailboxes: dict[int, Mailbox] = {}
        self.accepted_domains: dict[str, AcceptedDomain] = {}
        self.connectors: dict[str, OutboundConnector] = {}
        self.endpoints: dict[str, MigrationEndpoint] = {}
        self.batches: dict[str, MigrationBatch] = {}
        self.moves: dict[uuid.UUID, Move] = {}
        self.faults: dict[str, Fault] = {}  # by lower-case primary SMTP address
        self._index: dict[str, set[int]] = {}
        self._move_of_mailbox: dict[int, uuid.UUID] = {}
        self._rows_cache: dict[bool, list[tuple[int, Mailbox]]] = {}
        self._next_seq = 1
        self._generated = 0  # how many generated people exist (next generation index)
        self.factory = MailboxFactory(
            tenant_name=config.tenant_name, domains=config.domains, seed=config.seed_random
        )

    # ------------------------------------------------------------------ ids

    def next_seq(self) -> int:
        with self.lock:
            seq = self._next_seq
            self._next_seq += 1
            return seq

    def new_guid(self) -> uuid.UUID:
        return uuid.uuid4()

    @property
    def domain_names(self) -> set[str]:
        return set(self.accepted_domains)

    # ------------------------------------------------------------------ seeding

    def seed_defaults(self) -> None:
        """Accepted domains and the configured mailboxes, for a fresh tenant."""
        with self.lock:
            for i, domain in enumerate(self.config.domains):
                self._add_domain(domain.lower(), default=(i == 0))
            self._add_domain(self.config.initial_domain, initial=True)
            self._add_domain(self.config.routing_domain)
            if self.config.seed_csv is not None:
                self.add_rows(read_seed_csv(self.config.seed_csv.read_text(encoding="utf-8")))
            else:
                self.add_generated(self.config.seed_mailboxes)

    def _add_domain(self, domain: str, *, default: bool = False, initial: bool = False) -> None:
        self.accepted_domains[domain] = AcceptedDomain(
            seq=self.next_seq(), guid=self.new_guid(), name=domain, domain_name=domain,
            default=default, initial_domain=initial,
        )

    def add_generated(self, count: int) -> list[Mailbox]:
        with self.lock:
            start = self._generated
            made = list(self.factory.generate(start, count, self._next_seq))
            self._next_seq += len(made)
            self._generated += count
            for mailbox in made:
                self._add_mailbox(mailbox)
            return made

    def add_rows(self, rows: list[SeedRow]) -> list[Mailbox]:
        with self.lock:
            made = []
            for mailbox, row in self.factory.from_rows(rows, self._next_seq):
                self._next_seq = mailbox.seq + 1
                self._add_mailbox(mailbox)
                if row.fault is not None:
                    self.faults[mailbox.primary_smtp_address.lower()] = row.fault
                made.append(mailbox)
            return made

    def _add_mailbox(self, mailbox: Mailbox) -> None:
        self.mailboxes[mailbox.seq] = mailbox
        self._rows_cache.clear()
        for key in _identity_keys(mailbox):
            self._index.setdefault(key, set()).add(mailbox.seq)

    # ------------------------------------------------------------------ lookups

    def recipient_rows(self, *, mailboxes: bool) -> list[tuple[int, Mailbox]]:
        """(seq, recipient) in creation order, mailboxes or mail users; cached between changes
        because paging a large tenant asks for it once per page."""
        rows = self._rows_cache.get(mailboxes)
        if rows is None:
            rows = [(m.seq, m) for m in self.mailboxes.values() if m.is_mailbox == mailboxes]
            self._rows_cache[mailboxes] = rows
        return rows

    def find_recipient(self, identity: str, *, mailboxes_only: bool = False) -> Mailbox:
        """The one recipient *identity* names, else Exchange's not-found/ambiguous error."""
        key = identity.strip().lower()
        if key.startswith("{") and key.endswith("}"):
            key = key[1:-1]
        seqs = self._index.get(key, set())
        found = [self.mailboxes[s] for s in sorted(seqs)
                 if not mailboxes_only or self.mailboxes[s].is_mailbox]
        if not found:
            raise errors.not_found(identity)
        if len(found) > 1:
            raise errors.ambiguous(identity)
        return found[0]

    def move_for(self, mailbox: Mailbox) -> Move | None:
        """The mailbox's move (a batch user or a move request); there is at most one."""
        guid = self._move_of_mailbox.get(mailbox.seq)
        return self.moves.get(guid) if guid is not None else None

    def add_move(self, move: Move) -> None:
        self.moves[move.request_guid] = move
        self._move_of_mailbox[move.mailbox_seq] = move.request_guid

    def remove_move(self, move: Move) -> None:
        self.moves.pop(move.request_guid, None)
        if self._move_of_mailbox.get(move.mailbox_seq) == move.request_guid:
            del self._move_of_mailbox[move.mailbox_seq]

    def find_move(self, identity: str) -> Move:
        """A move request by its GUID or by any identity of its mailbox."""
        key = identity.strip().strip("{}")
        try:
            guid = uuid.UUID(key)
        except ValueError:
            guid = None
        if guid is not None and guid in self.moves:
            return self.moves[guid]
        try:
            mailbox = self.find_recipient(identity)
        except errors.CmdletError:
            raise errors.not_found(identity) from None
        move = self.move_for(mailbox)
        if move is None or move.phase is Phase.CREATED:
            raise errors.not_found(identity)
        return move

    def find_endpoint(self, identity: str) -> MigrationEndpoint:
        endpoint = self.endpoints.get(identity.strip().lower())
        if endpoint is None:
            for candidate in self.endpoints.values():
                if str(candidate.guid) == identity.strip().strip("{}").lower():
                    return candidate
            raise errors.not_found(identity)
        return endpoint

    def find_batch(self, identity: str) -> MigrationBatch:
        batch = self.batches.get(identity.strip().lower())
        if batch is None:
            for candidate in self.batches.values():
                if str(candidate.guid) == identity.strip().strip("{}").lower():
                    return candidate
            raise errors.not_found(identity)
        return batch

    def batch_moves(self, batch: MigrationBatch) -> list[Move]:
        return sorted((m for m in self.moves.values() if m.migration_batch == batch.name),
                      key=lambda m: m.seq)

    def is_accepted_domain(self, domain: str) -> bool:
        """Exact accepted domain, or a subdomain of one (mail.fabrikam.example)."""
        domain = domain.strip().rstrip(".").lower()
        return any(domain == d or domain.endswith("." + d) for d in self.accepted_domains)

    def fault_for(self, mailbox: Mailbox) -> Fault | None:
        return self.faults.get(mailbox.primary_smtp_address.lower())

    # ------------------------------------------------------------------ changes

    def convert_to_mail_user(self, mailbox: Mailbox, target_delivery_domain: str) -> None:
        """What Exchange does when an offboarding move completes."""
        local = mailbox.primary_smtp_address.split("@", 1)[0]
        mailbox.recipient_type_details = "MailUser"
        mailbox.external_email_address = f"SMTP:{local}@{target_delivery_domain}"
        mailbox.when_changed = utcnow()
        self._rows_cache.clear()

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            def dump(items: Iterable[BaseModel]) -> list[Any]:
                return [i.model_dump(mode="json") for i in items]
            return {
                "version": STATE_VERSION,
                "tenant_id": self.tenant_id,
                "signing_key": self.signing_key.hex(),
                "next_seq": self._next_seq,
                "generated": self._generated,
                "mailboxes": dump(self.mailboxes.values()),
                "accepted_domains": dump(self.accepted_domains.values()),
                "connectors": dump(self.connectors.values()),
                "endpoints": dump(self.endpoints.values()),
                "batches": dump(self.batches.values()),
                "moves": dump(self.moves.values()),
                "faults": {k: f.model_dump(mode="json") for k, f in self.faults.items()},
            }

    def save(self, path: Path) -> None:
        """Write atomically, owner-only: it holds endpoint credentials and the token key."""
        data = json.dumps(self.snapshot(), ensure_ascii=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION or data.get("tenant_id") != self.tenant_id:
            raise ValueError(f"{path}: state of another tenant or version")
        with self.lock:
            self.signing_key = bytes.fromhex(data["signing_key"])
            self._next_seq = data["next_seq"]
            self._generated = data["generated"]
            for raw in data["mailboxes"]:
                mailbox = Mailbox.model_validate(raw)
                self._add_mailbox(mailbox)
                self.factory.remember(mailbox)
            self.accepted_domains = {d["name"]: AcceptedDomain.model_validate(d)
                                     for d in data["accepted_domains"]}
            self.connectors = {c["name"].lower(): OutboundConnector.model_validate(c)
                               for c in data["connectors"]}
            self.endpoints = {e["name"].lower(): MigrationEndpoint.model_validate(e)
                              for e in data["endpoints"]}
            self.batches = {b["name"].lower(): MigrationBatch.model_validate(b)
                            for b in data["batches"]}
            for raw in data["moves"]:
                move = Move.model_validate(raw)
                if move.phase is Phase.VALIDATING:  # interrupted mid-call: validate again
                    move.phase = Phase.QUEUED
                self.add_move(move)
            self.faults = {k: Fault.model_validate(f) for k, f in data["faults"].items()}
