"""The cloud MRS calling the on-prem MRSProxy (lab protocol: `lab.mrsproxy_protocol`).

Outcomes are reduced to what a move needs to know: success, a transient
refusal (wait and retry), or a permanent failure with the text Exchange would
show. Credentials travel only in the Authorization header and never appear in
an outcome's message.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import BaseModel, ValidationError

from lab.mrsproxy_protocol import MESSAGES, PATH, MrsResponse

__all__ = ["MrsOutcome", "MrsProxyClient"]

COMMUNICATION_ERROR = "CommunicationErrorTransientException"
PERMANENT = "RemotePermanentException"


@dataclass(frozen=True)
class MrsOutcome:
    ok: bool
    transient: bool = False
    error_type: str | None = None
    message: str | None = None
    response: MrsResponse | None = None

    @property
    def error_text(self) -> str:
        """``<ExceptionType>: <message>``, the way Get-MigrationUserStatistics shows errors."""
        message = self.message or ""
        if self.error_type and not message.startswith(self.error_type):
            return f"{self.error_type}: {message}"
        return message


class MrsProxyClient:
    """One keep-alive httpx client per on-prem server URL."""

    def __init__(self, remote_servers: dict[str, str], ca_file: Path | None,
                 timeout: float = 15.0) -> None:
        self._urls = {fqdn.lower(): url.rstrip("/") for fqdn, url in remote_servers.items()}
        self._verify: ssl.SSLContext = (ssl.create_default_context(cafile=str(ca_file))
                                        if ca_file else ssl.create_default_context())
        self._timeout = timeout
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def url_for(self, remote_server: str) -> str:
        base = self._urls.get(remote_server.strip().lower(), f"https://{remote_server.strip()}")
        return base + PATH

    def _client(self, url: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = httpx.Client(verify=self._verify, timeout=self._timeout)
                self._clients[url] = client
            return client

    def call(self, remote_server: str, username: str | None, password: str | None,
             request: BaseModel) -> MrsOutcome:
        url = self.url_for(remote_server)
        auth = httpx.BasicAuth(username or "", password or "")
        try:
            reply = self._client(url).post(url, json=request.model_dump(mode="json"), auth=auth)
        except httpx.TransportError as exc:
            return MrsOutcome(False, True, COMMUNICATION_ERROR,
                              f"The call to '{url}' failed. Error details: {type(exc).__name__}.")
        if reply.status_code == 401:
            return MrsOutcome(False, False, PERMANENT, MESSAGES["access-denied"])
        if reply.status_code == 404:
            return MrsOutcome(False, False, PERMANENT,
                              MESSAGES["disabled"].format(server=remote_server))
        if reply.status_code == 403:
            return MrsOutcome(False, False, PERMANENT,
                              "The remote server returned an error: (403) Forbidden.")
        if reply.status_code >= 500:
            return MrsOutcome(False, True, COMMUNICATION_ERROR,
                              f"The call to '{url}' failed. The remote server returned an "
                              f"error: ({reply.status_code}).")
        try:
            parsed = MrsResponse.model_validate_json(reply.content)
        except ValidationError:
            return MrsOutcome(False, False, PERMANENT,
                              f"The remote server at '{url}' sent an answer MRS can't read "
                              f"(HTTP {reply.status_code}).")
        if parsed.ok:
            return MrsOutcome(True, response=parsed)
        error_type = parsed.error.type if parsed.error else PERMANENT
        message = parsed.error.message if parsed.error else "The remote server refused the call."
        return MrsOutcome(False, error_type.endswith("TransientException"), error_type, message,
                          parsed)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
