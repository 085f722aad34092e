"""The lab's control API (`/lab/...`): look inside the tenant and steer it.

Loopback only and unauthenticated, because it exists for tests and the demo:
``GET /lab/health``, ``GET /lab/state``, ``POST``/``DELETE /lab/faults``,
``POST /lab/throttle``, ``POST /lab/seed``. JSON in, JSON out.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any

from lab.exo.cmdlets import Context
from lab.exo.errors import CmdletError
from lab.exo.faults import parse_fault
from lab.exo.http import Request, Response, json_response
from lab.exo.seed import read_seed_csv
from lab.exo.statuses import batch_counts, batch_status, migration_user_status, move_request_status
from lab.exo.throttle import Throttle

__all__ = ["ControlApi"]


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message}, note=message[:60])


class ControlApi:
    def __init__(self, context: Context, throttle: Throttle) -> None:
        self.context = context
        self.tenant = context.tenant
        self.throttle = throttle

    def handle(self, request: Request) -> Response:
        try:
            if not ipaddress.ip_address(request.client_ip.split("%")[0]).is_loopback:
                return _error(403, "the control API answers loopback clients only")
        except ValueError:
            return _error(403, "the control API answers loopback clients only")
        route = (request.method, request.path.rstrip("/"))
        try:
            body = request.json() if request.method in ("POST", "DELETE") else None
        except ValueError:
            return _error(400, "the body must be JSON")
        if body is not None and not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        body = body or {}
        try:
            if route == ("GET", "/lab/health"):
                return json_response(200, self.health())
            if route == ("GET", "/lab/state"):
                return json_response(200, self.state())
            if route == ("POST", "/lab/faults"):
                return self.set_fault(body)
            if route == ("DELETE", "/lab/faults"):
                return self.clear_fault(body)
            if route == ("POST", "/lab/throttle"):
                return json_response(200, self.throttle_state(self.throttle.configure(body)))
            if route == ("GET", "/lab/throttle"):
                return json_response(200, self.throttle_state(self.throttle.settings))
            if route == ("POST", "/lab/seed"):
                return self.seed(body)
        except ValueError as exc:
            return _error(400, str(exc))
        except CmdletError as exc:
            return _error(exc.status, exc.message)
        return _error(404, f"no such lab endpoint: {request.method} {request.path}")

    def health(self) -> dict[str, Any]:
        with self.tenant.lock:
            return {"status": "ok", "tenant_id": self.tenant.tenant_id,
                    "recipients": len(self.tenant.mailboxes)}

    def throttle_state(self, settings: Any) -> dict[str, Any]:
        return {
            "requests_per_second": settings.requests_per_second,
            "burst": settings.burst,
            "max_concurrent_requests": settings.max_concurrent_requests,
            "error_rate_503": settings.error_rate_503,
            "latency_ms": list(settings.latency_ms),
            "in_flight": self.throttle.in_flight,
        }

    def state(self) -> dict[str, Any]:
        tenant = self.tenant
        with tenant.lock:
            mailboxes = sum(1 for m in tenant.mailboxes.values() if m.is_mailbox)
            users = []
            statuses: Counter[str] = Counter()
            for move in sorted(tenant.moves.values(), key=lambda m: m.seq):
                status = (migration_user_status(move) if move.in_batch
                          else move_request_status(move))
                statuses[status] += 1
                users.append({
                    "mailbox": move.mailbox_address,
                    "batch": move.migration_batch,
                    "request_guid": str(move.request_guid),
                    "status": status,
                    "status_detail": move.status_detail,
                    "percent": move.percent,
                    "error": move.message,
                    "remote_host": move.remote_host,
                })
            batches = []
            for batch in sorted(tenant.batches.values(), key=lambda b: b.seq):
                moves = tenant.batch_moves(batch)
                batches.append({"name": batch.name, "status": batch_status(batch, moves),
                                "endpoint": batch.endpoint, **batch_counts(moves)})
            return {
                "tenant": {"id": tenant.tenant_id, "name": tenant.config.tenant_name,
                           "domains": sorted(tenant.accepted_domains)},
                "counts": {
                    "mailboxes": mailboxes,
                    "mail_users": len(tenant.mailboxes) - mailboxes,
                    "batches": len(tenant.batches),
                    "moves": len(tenant.moves),
                    "by_status": dict(statuses),
                },
                "batches": batches,
                "users": users,
                "faults": {k: f.model_dump(mode="json") for k, f in tenant.faults.items()},
                "throttle": self.throttle_state(self.throttle.settings),
            }

    def set_fault(self, body: dict[str, Any]) -> Response:
        fault = parse_fault(str(body.get("fault", "")))
        with self.tenant.lock:
            mailbox = self.tenant.find_recipient(str(body.get("mailbox", "")))
            self.tenant.faults[mailbox.primary_smtp_address.lower()] = fault
        return json_response(200, {"mailbox": mailbox.primary_smtp_address,
                                   "fault": fault.model_dump(mode="json")})

    def clear_fault(self, body: dict[str, Any]) -> Response:
        with self.tenant.lock:
            mailbox = self.tenant.find_recipient(str(body.get("mailbox", "")))
            removed = self.tenant.faults.pop(mailbox.primary_smtp_address.lower(), None)
        return json_response(200, {"mailbox": mailbox.primary_smtp_address,
                                   "removed": removed is not None})

    def seed(self, body: dict[str, Any]) -> Response:
        if "csv" in body:
            made = self.tenant.add_rows(read_seed_csv(str(body["csv"])))
        elif isinstance(body.get("mailboxes"), int) and 0 < body["mailboxes"] <= 100_000:
            made = self.tenant.add_generated(body["mailboxes"])
        else:
            raise ValueError('expected {"mailboxes": N} (1..100000) or {"csv": "..."}')
        return json_response(200, {"added": len(made),
                                   "addresses": [m.primary_smtp_address for m in made[:1000]]})
