"""The HTTPS server and `ExoStandIn`, the stand-in as one object (tests start it in-process).

Stdlib `ThreadingHTTPServer` with TLS and HTTP/1.1 keep-alive: one thread per
connection, the TLS handshake done in that thread (a slow client never blocks
accepting others). Routes::

    GET  /{tenant}/v2.0/.well-known/openid-configuration     (tokens.py)
    POST /{tenant}/oauth2/v2.0/token                         (tokens.py)
    POST /adminapi/{beta|v1.0}/{tenant}/InvokeCommand        (adminapi.py)
    *    /lab/...                                            (control.py, loopback only)

One log line per request (logger ``lab.exo.http``): client, method, path
without query, status, duration and a short note. Never a header, body,
secret or token.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lab.exo.adminapi import AdminApi
from lab.exo.cmdlets import Context
from lab.exo.config import ExoConfig
from lab.exo.control import ControlApi
from lab.exo.errors import AadError
from lab.exo.http import Request, Response, json_response
from lab.exo.moves import MoveSimulator
from lab.exo.mrsproxy_client import MrsProxyClient
from lab.exo.tenant import Tenant
from lab.exo.throttle import Throttle, ThrottleSettings
from lab.exo.tokens import TokenService

__all__ = ["ExoStandIn"]

log = logging.getLogger("lab.exo.http")

_DISCOVERY = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
_ADMIN = re.compile(r"^/adminapi/(beta|v1\.0)/([^/]+)/invokecommand$", re.IGNORECASE)
MAX_BODY = 64 * 1024 * 1024


class _Router:
    def __init__(self, tokens: TokenService, admin: AdminApi, control: ControlApi) -> None:
        self.tokens = tokens
        self.admin = admin
        self.control = control

    def route(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/lab/"):
            return self.control.handle(request)
        if (m := _ADMIN.match(path)) and request.method == "POST":
            return self.admin.handle(request, m.group(1), m.group(2))
        if (m := _DISCOVERY.match(path)) and request.method == "GET":
            try:
                return json_response(200, self.tokens.openid_configuration(request.base_url,
                                                                            m.group(1)))
            except AadError as exc:
                return json_response(exc.status, exc.body(), note=f"AADSTS{exc.code}")
        if (m := _TOKEN.match(path)) and request.method == "POST":
            return self._token(request, m.group(1))
        return json_response(404, {"error": {"code": "NotFound",
                                             "message": "The resource was not found."}})

    def _token(self, request: Request, segment: str) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        client = form.get("client_id", "")[:40]
        how = ("secret" if "client_secret" in form else
               "assertion" if "client_assertion" in form else "none")
        try:
            issued = self.tokens.issue(request.base_url, segment, form)
        except AadError as exc:
            return json_response(exc.status, exc.body(),
                                 note=f"client_id={client} {how} -> AADSTS{exc.code}")
        return json_response(200, issued, {"Cache-Control": "no-store", "Pragma": "no-cache"},
                             note=f"client_id={client} {how} -> token")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stalls
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        self.request.do_handshake()  # in this connection's thread, not the accept loop
        super().setup()

    def _serve(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command, path=url.path, query=dict(parse_qsl(url.query)),
            headers={k.lower(): v for k, v in self.headers.items()}, body=body,
            client_ip=self.client_address[0],
        )
        try:
            response = self.server.router.route(request)
        except Exception:
            log.exception("request failed: %s %s", self.command, url.path)
            response = json_response(500, {"error": {"code": "InternalServerError",
                                                     "message": "Internal server error"}})
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        if self.server.log_requests:
            log.info("%s %s %s %d %.0fms %s", self.client_address[0], self.command, url.path,
                     response.status, (time.monotonic() - started) * 1000, response.note)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is written by _serve, without the query string


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], router: _Router, tls: ssl.SSLContext,
                 log_requests: bool) -> None:
        super().__init__(address, _Handler)
        self.router = router
        self.log_requests = log_requests
        self.socket = tls.wrap_socket(self.socket, server_side=True,
                                      do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        del request  # TLS handshakes that fail and clients that hang up are routine
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


class ExoStandIn:
    """The Exchange Online stand-in: tenant, token service, admin API and move simulator."""

    def __init__(self, config: ExoConfig) -> None:
        self.config = config
        self.tenant = Tenant(config)
        if config.state_file is not None and config.state_file.exists():
            self.tenant.load(config.state_file)
        else:
            self.tenant.seed_defaults()
        self.tokens = TokenService(config, self.tenant.signing_key)
        self.throttle = Throttle(ThrottleSettings(
            requests_per_second=config.throttle_requests_per_second,
            burst=config.throttle_burst,
            max_concurrent_requests=config.max_concurrent_requests,
            error_rate_503=config.error_rate_503,
            latency_ms=config.latency_ms,
        ))
        self.mrs = MrsProxyClient(config.remote_servers, config.ca_file)
        self.moves = MoveSimulator(self.tenant, self.mrs, config)
        self.context = Context(self.tenant, self.moves, self.mrs)
        self._router = _Router(self.tokens, AdminApi(config, self.context, self.tokens,
                                                     self.throttle),
                               ControlApi(self.context, self.throttle))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ExoStandIn:
        """Listen and run; returns once the port is bound and accepting."""
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(str(self.config.cert_file), str(self.config.key_file))
        self._server = _Server((self.config.listen_host, self.config.port), self._router, tls,
                               self.config.log_requests)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2}, name="exo-http",
                                        daemon=True)
        self._thread.start()
        self.moves.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        host = self.config.listen_host
        if host in ("0.0.0.0", "", "::"):  # noqa: S104 - naming the wildcard, not binding it
            host = "127.0.0.1"
        return f"https://{host}:{self.port}"

    def save_state(self) -> None:
        if self.config.state_file is not None:
            self.tenant.save(self.config.state_file)

    def stop(self) -> None:
        """Stop serving and moving; write the state file when one is configured."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.moves.stop()
        self.mrs.close()
        self.save_state()
        self._server = None

    def __enter__(self) -> ExoStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

