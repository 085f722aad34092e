"""A test double of the on-prem stand-in's MRSProxy (`lab.mrsproxy_protocol`), over HTTPS.

Just enough behaviour to drive the Exchange Online stand-in's moves: Basic
credentials, an on/off switch (404 when off), MaxMRSConnections, targets known
by ExchangeGuid, and a record of every call.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from lab.mrsproxy_protocol import (
    MESSAGES,
    PATH,
    CloseMove,
    CompleteMove,
    MrsRequest,
    OpenMove,
    Ping,
    ValidateTarget,
)

_REQUEST = TypeAdapter(MrsRequest)
ACCOUNT_PASSWORD = "on-prem-secret"  # the double's only account


class FakeMrsProxy:
    def __init__(self, cert_file: Path, key_file: Path, *, username: str = "LAB\\mrsadmin",
                 password: str | None = None, max_connections: int = 100) -> None:
        self.username = username
        self.password = password or ACCOUNT_PASSWORD
        self.max_connections = max_connections
        self.enabled = True
        self.known_targets: set[uuid.UUID] | None = None  # None: every GUID has a target
        self.open: set[uuid.UUID] = set()
        self.peak_open = 0
        self.calls: list[dict[str, Any]] = []
        self.completed: list[uuid.UUID] = []
        self._lock = threading.Lock()
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(str(cert_file), str(key_file))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeMrsProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def ops(self, op: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.calls if c["op"] == op]

    def answer(self, authorization: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if authorization != f"Basic {expected}":
            return 401, {"ok": False, "error": {"type": "UnauthorizedAccessException",
                                                "message": MESSAGES["access-denied"]}}
        if not self.enabled:
            return 404, {"ok": False, "error": {"type": "RemotePermanentException",
                                                "message": MESSAGES["disabled"].format(server="ex1")}}
        request = _REQUEST.validate_json(body)
        with self._lock:
            self.calls.append(request.model_dump(mode="json"))
            if isinstance(request, Ping):
                return 200, {"ok": True, "server": "ex1"}
            if isinstance(request, OpenMove):
                if len(self.open) >= self.max_connections:
                    return 200, {"ok": False, "error": {
                        "type": "MRSProxyConnectionLimitReachedTransientException",
                        "message": MESSAGES["connection-limit"].format(
                            limit=self.max_connections, server="ex1")}}
                self.open.add(request.move_id)
                self.peak_open = max(self.peak_open, len(self.open))
                return 200, {"ok": True, "server": "ex1"}
            if isinstance(request, CloseMove):
                self.open.discard(request.move_id)
                return 200, {"ok": True, "server": "ex1"}
            if isinstance(request, ValidateTarget):
                if self.known_targets is not None and request.exchange_guid not in self.known_targets:
                    return 200, {"ok": False, "error": {
                        "type": "RecipientNotFoundPermanentException",
                        "message": MESSAGES["no-target"].format(guid=request.exchange_guid)}}
                return 200, {"ok": True, "server": "ex1", "target_identity": str(uuid.uuid4())}
            if isinstance(request, CompleteMove):
                self.completed.append(request.exchange_guid)
                return 200, {"ok": True, "server": "ex1"}
        raise AssertionError(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != PATH:
                    status, payload = 404, {"ok": False}
                else:
                    status, payload = fake.answer(self.headers.get("Authorization"), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
