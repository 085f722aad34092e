"""The Exchange organisation as the Management Shell shows it, kept as JSON in state_dir.

What lives here and not in Active Directory: everything Exchange keeps in the
configuration partition (accepted domains, send connectors, EWS virtual
directories, databases, recipient filtering), plus two things the lab's
Samba schema has no attribute for:

- archive GUIDs (`msExchArchiveGUID`), keyed by the user's objectGUID;
- which database a completed move put a mailbox in (`homeMDB`), keyed the same way.

The file is written atomically after each change; delete state_dir to start over.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from contracts.onprem import (
    AcceptedDomain,
    DomainType,
    EwsVirtualDirectory,
    MailboxDatabase,
    SendConnector,
)
from lab.onprem.config import OnpremConfig

__all__ = ["FREE_SPACE", "MailboxPlacement", "OrgModel", "OrgState", "domain_of_base_dn"]

FREE_SPACE = 500 * 1024**3  # what a mounted lab database reports as AvailableNewMailboxSpace


class MailboxPlacement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exchange_guid: uuid.UUID
    database: str
    archive_database: str | None = None


class OrgState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organization: str
    exchange_version: str
    servers: list[str]
    accepted_domains: list[AcceptedDomain]
    send_connectors: list[SendConnector] = []
    ews_virtual_directories: list[EwsVirtualDirectory]
    mailbox_databases: list[MailboxDatabase]
    recipient_validation_enabled: bool = False
    archive_guids: dict[str, uuid.UUID] = {}  # objectGUID -> ArchiveGuid
    mailboxes: dict[str, MailboxPlacement] = {}  # objectGUID -> where the move put it

    def vdir(self, identity: str) -> EwsVirtualDirectory | None:
        return next((v for v in self.ews_virtual_directories
                     if v.identity.lower() == identity.lower()), None)

    def database(self, name: str) -> MailboxDatabase | None:
        return next((d for d in self.mailbox_databases if d.name.lower() == name.lower()), None)


def domain_of_base_dn(base_dn: str) -> str:
    return ".".join(part.split("=", 1)[1] for part in base_dn.split(",")
                    if part.strip().upper().startswith("DC=")).lower()


def _initial_state(config: OnpremConfig) -> OrgState:
    domain = domain_of_base_dn(config.ad_base_dn)
    return OrgState(
        organization=config.organization,
        exchange_version=config.exchange_version,
        servers=list(config.servers),
        # Setup makes the forest root domain the default authoritative domain.
        accepted_domains=[AcceptedDomain(name=domain, domain_name=domain,
                                         domain_type=DomainType.AUTHORITATIVE, default=True)],
        ews_virtual_directories=[
            EwsVirtualDirectory(identity=f"{server}\\EWS (Default Web Site)", server=server,
                                mrsproxy_enabled=False,
                                mrsproxy_max_connections=config.mrsproxy_max_connections)
            for server in config.servers
        ],
        mailbox_databases=[
            MailboxDatabase(name=db["name"], server=db["server"], mounted=bool(db["mounted"]),
                            available_new_mailbox_space_bytes=FREE_SPACE if db["mounted"] else None)
            for db in config.databases
        ],
    )


class OrgModel:
    """The persisted organisation; read with `snapshot()`, change inside `change()`."""

    def __init__(self, config: OnpremConfig) -> None:
        self._path = config.state_dir / "org.json"
        self._lock = threading.RLock()
        if self._path.exists():
            self._state = OrgState.model_validate_json(self._path.read_text())
        else:
            self._state = _initial_state(config)
            self._save()

    def snapshot(self) -> OrgState:
        with self._lock:
            return self._state.model_copy(deep=True)

    def archive_guid(self, object_guid: uuid.UUID) -> uuid.UUID | None:
        """One recipient's ArchiveGuid, without copying the whole model."""
        with self._lock:
            return self._state.archive_guids.get(str(object_guid))

    @property
    def organization(self) -> str:
        return self._state.organization

    @contextmanager
    def change(self) -> Iterator[OrgState]:
        """Mutate the state in the block; it is saved when the block ends without error."""
        with self._lock:
            working = self._state.model_copy(deep=True)
            yield working
            self._state = OrgState.model_validate(working.model_dump())
            self._save()

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self._state.model_dump(mode="json"), indent=2) + "\n")
        os.replace(tmp, self._path)

    @property
    def path(self) -> Path:
        return self._path
