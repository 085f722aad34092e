"""The on-prem Exchange stand-in's HTTP(S) front: WinRM, MRSProxy and the lab control API.

    POST /wsman               WinRM (NTLM + sealing over HTTP; Basic or NTLM over HTTPS)
    POST /EWS/mrsproxy.svc    MRSProxy (HTTP Basic; 404 while disabled everywhere)
    GET  /lab/health|state|scripts, POST|DELETE /lab/faults, POST /lab/latency   (loopback only)

Authentication follows a Windows server's defaults: over HTTP only Negotiate
(NTLM) with message encryption is accepted — Basic and unencrypted bodies get
401, as with AllowUnencrypted=false; over HTTPS, Basic and NTLM both work.
NTLM authenticates a TCP connection, so its state lives in the per-connection
request handler.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, TypeAdapter, ValidationError

from lab import mrsproxy_protocol
from lab.mrsproxy_protocol import MESSAGES, MrsError, MrsRequest, MrsResponse
from lab.onprem import ntlm, wsman
from lab.onprem.ad import Directory
from lab.onprem.backend import Backend
from lab.onprem.config import OnpremConfig
from lab.onprem.control import FaultRule, LabControl, LatencyRule
from lab.onprem.dispatch import ScriptLog, ScriptRunner
from lab.onprem.mrsproxy import MrsProxy
from lab.onprem.org import OrgModel, domain_of_base_dn
from lab.onprem.shell import Shells
from lab.onprem.users import check_password, warn_if_readable

__all__ = ["OnpremStandIn"]

log = logging.getLogger("lab.onprem")

_MAX_BODY = 32 * 1024 * 1024
_SOAP_TYPE = "application/soap+xml;charset=UTF-8"
_MRS_REQUEST: TypeAdapter[Any] = TypeAdapter(MrsRequest)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], stand_in: OnpremStandIn,
                 tls: ssl.SSLContext | None) -> None:
        self.stand_in = stand_in
        self.tls = tls
        self.bindings = ntlm.channel_bindings_for(stand_in.config.cert_file) if tls else None
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._sockets_lock:
            self._sockets.add(request)
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:  # handshake in the connection's own thread, not the accept loop
            request = self.tls.wrap_socket(request, server_side=True)
        _Handler(request, client_address, self)

    def shutdown_request(self, request: Any) -> None:
        with self._sockets_lock:
            self._sockets.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._sockets_lock:
            for sock in list(self._sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 120  # HTTP.sys's idle connection timeout
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        self.ntlm = ntlm.NtlmConnection(self.server.bindings)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    @property
    def stand_in(self) -> OnpremStandIn:
        return self.server.stand_in

    @property
    def secure(self) -> bool:
        return self.server.tls is not None

    # ------------------------------------------------------------------ routing

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if body is None:
            return
        if path.lower() == "/wsman":
            self._wsman(body)
        elif path.lower() == mrsproxy_protocol.PATH.lower():
            self._mrsproxy(body)
        elif path.startswith("/lab/"):
            self._control("POST", path, body)
        else:
            self._send(404, b"")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/lab/"):
            self._control("GET", path, b"")
        else:
            self._send(404, b"")

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if body is not None and path.startswith("/lab/"):
            self._control("DELETE", path, body)
        elif body is not None:
            self._send(404, b"")

    # ------------------------------------------------------------------ WinRM

    def _wsman(self, body: bytes) -> None:
        user = self._authenticate_wsman()
        if user is None:
            return
        if not body:  # the empty POST that ends pywinrm's handshake before sealing starts
            self._send(200, b"")
            return
        encrypted = ntlm.is_encrypted(self.headers.get("Content-Type", ""))
        if encrypted:
            if not self.ntlm.established:
                self._send(400, b"")
                return
            try:
                soap = ntlm.unseal(self.ntlm.context, body)
            except ntlm.SealingError as exc:
                log.warning("refused a sealed message from %s: %s", self.address_string(), exc)
                self._send(400, b"", close=True)
                return
        elif not self.secure:
            self._unauthorized()  # AllowUnencrypted=false: plain SOAP over HTTP is refused
            return
        else:
            soap = body
        status, reply = self.stand_in.handle_wsman(soap, user)
        if encrypted:
            self._send(status, ntlm.seal(self.ntlm.context, reply), ntlm.ENCRYPTED_CONTENT_TYPE)
        else:
            self._send(status, reply, _SOAP_TYPE)

    def _authenticate_wsman(self) -> str | None:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() in ("negotiate", "ntlm"):
            try:
                challenge = self.ntlm.step(token.strip())
            except ntlm.AuthenticationFailed:
                log.info("NTLM authentication failed from %s", self.address_string())
                self._unauthorized(close=True)
                return None
            if challenge is not None:
                self._send(401, b"", extra={"WWW-Authenticate": f"{scheme} "
                                                                + base64.b64encode(challenge).decode()})
                return None
            return self.ntlm.user
        if scheme.lower() == "basic":
            if not self.secure:
                self._unauthorized()  # Basic over plain HTTP is off, as on Windows by default
                return None
            user = self._basic_user(token)
            if user is None:
                self._unauthorized()
            return user
        if self.ntlm.established:
            return self.ntlm.user
        self._unauthorized()
        return None

    def _basic_user(self, token: str) -> str | None:
        try:
            username, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return check_password(self.stand_in.config.users_file, username, password)

    def _unauthorized(self, *, close: bool = False) -> None:
        challenges = ["Negotiate"] + (['Basic realm="WSMAN"'] if self.secure else [])
        self._send(401, b"", extra={"WWW-Authenticate": challenges}, close=close)

    # ------------------------------------------------------------------ MRSProxy

    def _mrsproxy(self, body: bytes) -> None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic" or self._basic_user(token) is None:
            denied = MrsResponse(ok=False, error=MrsError(type="UnauthorizedAccessException",
                                                          message=MESSAGES["access-denied"]))
            self._send_model(401, denied, extra={"WWW-Authenticate": 'Basic realm="EWS"'})
            return
        proxy = self.stand_in.mrsproxy
        if not proxy.enabled_servers():
            names = ", ".join(self.stand_in.config.servers)
            self._send_model(404, MrsResponse(ok=False, error=MrsError(
                type="EndpointNotFoundException", message=MESSAGES["disabled"].format(server=names))))
            return
        try:
            request = _MRS_REQUEST.validate_json(body)
        except ValidationError:
            self._send_model(400, MrsResponse(ok=False, error=MrsError(
                type="ProtocolException", message="The request is not a valid MRSProxy call.")))
            return
        self._send_model(200, proxy.handle(request))

    # ------------------------------------------------------------------ lab control

    def _control(self, method: str, path: str, body: bytes) -> None:
        host = self.client_address[0]
        if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
            self._send(403, b"")
            return
        stand_in = self.stand_in
        try:
            if method == "GET" and path == "/lab/health":
                self._send_json(200, stand_in.health())
            elif method == "GET" and path == "/lab/state":
                self._send_json(200, stand_in.state())
            elif method == "GET" and path == "/lab/scripts":
                self._send_json(200, stand_in.script_log.entries())
            elif method == "POST" and path == "/lab/faults":
                stand_in.control.add_fault(FaultRule.model_validate_json(body))
                self._send_json(200, {"ok": True, "faults": len(stand_in.control.faults())})
            elif method == "DELETE" and path == "/lab/faults":
                self._send_json(200, {"ok": True, "removed": stand_in.control.clear_faults()})
            elif method == "POST" and path == "/lab/latency":
                stand_in.control.set_latency(LatencyRule.model_validate_json(body))
                self._send_json(200, {"ok": True, "latency_ms": list(stand_in.control.latency_ms)})
            else:
                self._send(404, b"")
        except (ValidationError, ValueError) as exc:
            self._send_json(400, {"ok": False, "error": str(exc)[:2000]})

    # ------------------------------------------------------------------ plumbing

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(411, b"", close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length", "0") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > _MAX_BODY:
            self._send(413, b"", close=True)
            return None
        return self.rfile.read(length) if length else b""

    def _send_model(self, status: int, model: BaseModel, extra: dict[str, Any] | None = None) -> None:
        self._send(status, model.model_dump_json().encode(), "application/json", extra=extra)

    def _send_json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, default=str).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str | None = None, *,
              extra: dict[str, Any] | None = None, close: bool = False) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            for item in value if isinstance(value, list) else [value]:
                self.send_header(name, item)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


class OnpremStandIn:
    """The stand-in as a library: `start()` serves from background threads, `stop()` ends it."""

    def __init__(self, config: OnpremConfig) -> None:
        self.config = config
        self._servers: list[_HttpServer] = []
        self._threads: list[threading.Thread] = []
        self.http_port = config.http_port
        self.https_port = config.https_port

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        config = self.config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        warn_if_readable(config.users_file)
        # pyspnego's NTLM acceptor reads its accounts from this variable (process-wide).
        os.environ["NTLM_USER_FILE"] = str(config.users_file)
        self.control = LabControl(config.latency_ms)
        self.org = OrgModel(config)
        self.directory = Directory(url=config.ad_ldaps_url, bind_user=config.ad_bind_user,
                                   password_file=config.ad_password_file, ca_file=config.ad_ca_file,
                                   base_dn=config.ad_base_dn)
        self.backend = Backend(config=config, org=self.org, directory=self.directory, control=self.control)
        self.script_log = ScriptLog(config.state_dir / "scripts.jsonl")
        self.runner = ScriptRunner(self.backend, self.script_log, config.templates_dir)
        self.mrsproxy = MrsProxy(self.backend)
        self.machine = f"{config.servers[0]}.{domain_of_base_dn(config.ad_base_dn)}"
        self.shells = Shells(self.runner.prepare, max_shells_per_user=config.max_shells_per_user,
                             address=f"http://{self.machine}:5985/wsman")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(config.cert_file, config.key_file)
        http = _HttpServer((config.listen_host, config.http_port), self, None)
        https = _HttpServer((config.listen_host, config.https_port), self, tls)
        self._servers = [http, https]
        self.http_port = http.server_address[1]
        self.https_port = https.server_address[1]
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, name=f"onprem-{server.server_address[1]}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        (config.state_dir / "ports.json").write_text(
            json.dumps({"http_port": self.http_port, "https_port": self.https_port}) + "\n")
        log.info("on-prem stand-in listening on %s: http %d, https %d", config.listen_host,
                 self.http_port, self.https_port)

    def stop(self) -> None:
        if not self._servers:
            return
        self.shells.close()
        for server in self._servers:
            server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.directory.close()
        self._servers, self._threads = [], []

    def __enter__(self) -> OnpremStandIn:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ endpoints

    def handle_wsman(self, soap: bytes, user: str) -> tuple[int, bytes]:
        """One SOAP request from an authenticated user -> (HTTP status, reply envelope)."""
        relates_to: str | None = None
        try:
            limit = self.config.max_envelope_size_kb * 1024
            if len(soap) > limit:
                raise wsman.WsmanFault(
                    wsman.CODE_MAX_ENVELOPE,
                    "The WS-Management service cannot process the request because the request size "
                    f"({len(soap)} bytes) exceeded the configured MaxEnvelopeSize quota ({limit} bytes).",
                    subcode="w:EncodingLimit", sender=True,
                )
            request = wsman.parse_request(soap)
            relates_to = request.message_id
            return 200, self.shells.handle(request, user)
        except wsman.WsmanFault as fault:
            return 500, wsman.fault_envelope(fault, relates_to, self.machine)

    def health(self) -> dict[str, Any]:
        return {"ok": True, "http_port": self.http_port, "https_port": self.https_port,
                "organization": self.org.organization}

    def state(self) -> dict[str, Any]:
        return {
            "org": self.org.snapshot().model_dump(mode="json"),
            "mrsproxy_connections": self.mrsproxy.connections(),
            "open_shells": self.shells.open_count(),
            "faults": [f.model_dump(mode="json") for f in self.control.faults()],
            "latency_ms": list(self.control.latency_ms),
        }
