"""MRSProxy, the endpoint Exchange Online's move service pushes a mailbox through.

Protocol: `lab/mrsproxy_protocol.py`. This module answers the JSON requests;
the HTTP layer (`server.py`) does Basic authentication and the 404 a server
gives while MRSProxy is disabled on every EWS virtual directory.

Connections are counted per server. An `open` goes to the enabled server
with the most room, as a load balancer in front of the CAS servers would
spread them; when every enabled server holds MaxMRSConnections, the call is
refused with MRSProxyConnectionLimitReachedTransientException.
"""

from __future__ import annotations

import threading
import uuid

from lab.mrsproxy_protocol import (
    MESSAGES,
    CloseMove,
    CompleteMove,
    MrsError,
    MrsRequest,
    MrsResponse,
    OpenMove,
    Ping,
    ValidateTarget,
)
from lab.onprem.ad import TYPE_MAIL_USER, TYPE_REMOTE_USER_MAILBOX, TYPE_USER_MAILBOX, AdUser
from lab.onprem.backend import Backend
from lab.onprem.org import MailboxPlacement, OrgState

__all__ = ["MrsProxy"]

_PERMANENT = "MigrationPermanentException"
_LIMIT = "MRSProxyConnectionLimitReachedTransientException"
_NIL = uuid.UUID(int=0)


def _refuse(error_type: str, message: str, server: str | None = None) -> MrsResponse:
    return MrsResponse(ok=False, error=MrsError(type=error_type, message=message), server=server)


class MrsProxy:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._open: dict[str, set[uuid.UUID]] = {}  # server -> move ids holding a connection

    def enabled_servers(self, state: OrgState | None = None) -> list[str]:
        state = state or self._backend.org.snapshot()
        return [v.server for v in state.ews_virtual_directories if v.mrsproxy_enabled]

    def connections(self) -> dict[str, int]:
        with self._lock:
            return {server: len(moves) for server, moves in self._open.items()}

    def handle(self, request: MrsRequest) -> MrsResponse:
        state = self._backend.org.snapshot()
        server = self._least_loaded(state)
        self._backend.control.delay()
        fault = self._backend.control.take_fault(f"mrsproxy:{request.op}")
        if fault is not None:
            return _refuse(fault.type, fault.message, server)
        if isinstance(request, Ping):
            return MrsResponse(ok=True, server=server)
        if isinstance(request, OpenMove):
            return self._open_move(state, request)
        if isinstance(request, CloseMove):
            return self._close_move(request, server)
        if isinstance(request, ValidateTarget):
            return self._validate(state, request, server)
        if isinstance(request, CompleteMove):
            return self._complete(state, request, server)
        raise AssertionError(f"unhandled MRSProxy request {request!r}")

    # ------------------------------------------------------------------ connections

    def _limits(self, state: OrgState) -> dict[str, int]:
        default = self._backend.config.mrsproxy_max_connections
        return {v.server: v.mrsproxy_max_connections or default
                for v in state.ews_virtual_directories if v.mrsproxy_enabled}

    def _least_loaded(self, state: OrgState) -> str | None:
        limits = self._limits(state)
        with self._lock:
            room = {s: limit - len(self._open.get(s, ())) for s, limit in limits.items()}
        return max(room, key=lambda s: room[s]) if room else None

    def _open_move(self, state: OrgState, request: OpenMove) -> MrsResponse:
        limits = self._limits(state)
        with self._lock:
            for server, moves in self._open.items():
                if request.move_id in moves:
                    return MrsResponse(ok=True, server=server)
            room = {s: limit - len(self._open.get(s, ())) for s, limit in limits.items()}
            if not room:
                return _refuse("EndpointNotFoundException", MESSAGES["disabled"].format(server="*"))
            best = max(room, key=lambda s: room[s])
            if room[best] <= 0:
                return _refuse(_LIMIT, MESSAGES["connection-limit"].format(limit=limits[best], server=best),
                               best)
            self._open.setdefault(best, set()).add(request.move_id)
        return MrsResponse(ok=True, server=best)

    def _close_move(self, request: CloseMove, server: str | None) -> MrsResponse:
        with self._lock:
            for name, moves in self._open.items():
                if request.move_id in moves:
                    moves.discard(request.move_id)
                    return MrsResponse(ok=True, server=name)
        return MrsResponse(ok=True, server=server)

    # ------------------------------------------------------------------ target checks

    def _target(self, exchange_guid: uuid.UUID) -> AdUser | MrsResponse:
        with self._backend.directory.session() as session:
            users = session.by_mailbox_guid(exchange_guid)
        if not users:
            return _refuse(_PERMANENT, MESSAGES["no-target"].format(guid=exchange_guid))
        if len(users) > 1:
            return _refuse(_PERMANENT, f"Multiple recipients have mailbox GUID '{exchange_guid}'.")
        return users[0]

    def _database_problem(self, state: OrgState, name: str) -> MrsResponse | None:
        database = state.database(name)
        if database is None or not database.mounted:
            return _refuse(_PERMANENT, MESSAGES["database"].format(database=name))
        return None

    def _validate(self, state: OrgState, request: ValidateTarget, server: str | None) -> MrsResponse:
        target = self._target(request.exchange_guid)
        if isinstance(target, MrsResponse):
            return target.model_copy(update={"server": server})
        identity = target.canonical_name
        if target.type_details not in (TYPE_MAIL_USER, TYPE_REMOTE_USER_MAILBOX):
            if target.type_details is None:
                return _refuse(_PERMANENT, MESSAGES["no-target"].format(guid=request.exchange_guid), server)
            return _refuse(_PERMANENT, MESSAGES["primary-mailbox"].format(identity=identity), server)
        domain = request.target_delivery_domain.lower().rstrip(".")
        smtp_domains = {p.split("@")[-1].lower() for p in target.proxy_addresses
                        if p.lower().startswith("smtp:")}
        if domain not in smtp_domains:
            return _refuse(_PERMANENT, MESSAGES["smtp-proxy"].format(domain=request.target_delivery_domain),
                           server)
        wanted_x500 = f"x500:{request.legacy_exchange_dn}".lower()
        if wanted_x500 not in {p.lower() for p in target.proxy_addresses}:
            return _refuse(_PERMANENT, MESSAGES["x500-proxy"].format(
                identity=identity, legacy_dn=request.legacy_exchange_dn), server)
        if request.archive_guid not in (None, _NIL) and not request.primary_only:
            if state.archive_guids.get(str(target.object_guid)) != request.archive_guid:
                return _refuse(_PERMANENT, MESSAGES["archive"], server)
            if request.target_archive_database:
                problem = self._database_problem(state, request.target_archive_database)
                if problem is not None:
                    return problem.model_copy(update={"server": server})
        problem = self._database_problem(state, request.target_database)
        if problem is not None:
            return problem.model_copy(update={"server": server})
        return MrsResponse(ok=True, server=server, target_identity=target.object_guid)

    def _complete(self, state: OrgState, request: CompleteMove, server: str | None) -> MrsResponse:
        target = self._target(request.exchange_guid)
        if isinstance(target, MrsResponse):
            return target.model_copy(update={"server": server})
        key = str(target.object_guid)
        placement = state.mailboxes.get(key)
        already_done = placement is not None and placement.exchange_guid == request.exchange_guid
        if target.type_details == TYPE_USER_MAILBOX and already_done:
            return MrsResponse(ok=True, server=server, target_identity=target.object_guid)
        if target.type_details not in (TYPE_MAIL_USER, TYPE_REMOTE_USER_MAILBOX):
            return _refuse(_PERMANENT, MESSAGES["primary-mailbox"].format(identity=target.canonical_name),
                           server)
        problem = self._database_problem(state, request.target_database)
        if problem is not None:
            return problem.model_copy(update={"server": server})
        with self._backend.recipient_lock, self._backend.directory.session() as session:
            # the mail user becomes a mailbox: no more routing to the cloud
            session.replace(target.dn, {"msExchRecipientTypeDetails": [TYPE_USER_MAILBOX],
                                        "targetAddress": []})
        with self._backend.org.change() as changing:
            changing.mailboxes[key] = MailboxPlacement(
                exchange_guid=request.exchange_guid, database=request.target_database,
                archive_database=request.target_database if request.archive_moved else None)
        return MrsResponse(ok=True, server=server, target_identity=target.object_guid)
